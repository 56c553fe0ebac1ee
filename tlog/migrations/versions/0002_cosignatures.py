"""Witness cosignatures collected for the log's checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cosignatures",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=255), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tree", "size"], ["tree_heads.tree", "tree_heads.size"], name=op.f("fk_cosignatures_tree_tree_heads")
        ),
        sa.PrimaryKeyConstraint("tree", "size", "witness", name=op.f("pk_cosignatures")),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER cosignatures_append_only BEFORE UPDATE OR DELETE ON cosignatures "
            "FOR EACH ROW EXECUTE FUNCTION tlog_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER cosignatures_no_truncate BEFORE TRUNCATE ON cosignatures "
            "FOR EACH STATEMENT EXECUTE FUNCTION tlog_refuse_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER cosignatures_no_{action.lower()} BEFORE {action} ON cosignatures "
                f"BEGIN SELECT RAISE(ABORT, 'tlog: {action} on cosignatures refused: "
                "the table is append-only'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the tlog schema cannot be downgraded: the log is append-only")
