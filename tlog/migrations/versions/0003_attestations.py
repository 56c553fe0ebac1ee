"""DSSE payloads of dsse entries (Rekor v1's ``attestation``), append-only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Entries logged before this revision have no row here: their payloads were
never kept, so the API returns them without ``attestation``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attestations",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("payload_type", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tree", "log_index", name=op.f("pk_attestations")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # tlog_refuse_change() comes from revision 0001.
        op.execute(
            "CREATE TRIGGER attestations_append_only BEFORE UPDATE OR DELETE ON attestations "
            "FOR EACH ROW EXECUTE FUNCTION tlog_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER attestations_no_truncate BEFORE TRUNCATE ON attestations "
            "FOR EACH STATEMENT EXECUTE FUNCTION tlog_refuse_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER attestations_no_{action.lower()} BEFORE {action} ON attestations "
                f"BEGIN SELECT RAISE(ABORT, 'tlog: {action} on attestations refused: "
                "the table is append-only'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the tlog schema cannot be downgraded: the log is append-only")
