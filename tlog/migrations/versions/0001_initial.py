"""Initial schema: trees, entries, nodes, tree heads, search index, append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("entries", "nodes", "tree_heads", "search_index")


def upgrade() -> None:
    op.create_table(
        "trees",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("tree_id", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("log_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("frozen_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trees")),
        sa.UniqueConstraint("origin", name=op.f("uq_trees_origin")),
        sa.UniqueConstraint("tree_id", name=op.f("uq_trees_tree_id")),
    )
    op.create_table(
        "entries",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("integrated_time", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("log_index >= 0", name=op.f("ck_entries_log_index_nonnegative")),
        sa.ForeignKeyConstraint(["tree"], ["trees.id"], name=op.f("fk_entries_tree_trees")),
        sa.PrimaryKeyConstraint("tree", "log_index", name=op.f("pk_entries")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_entries_leaf_hash", "entries", ["tree", "leaf_hash"], unique=True)
    op.create_table(
        "nodes",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("tree", "key", name=op.f("pk_nodes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tree_heads",
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.CheckConstraint("size >= 0", name=op.f("ck_tree_heads_size_nonnegative")),
        sa.ForeignKeyConstraint(["tree"], ["trees.id"], name=op.f("fk_tree_heads_tree_trees")),
        sa.PrimaryKeyConstraint("tree", "size", name=op.f("pk_tree_heads")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "search_index",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("tree", sa.SmallInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("key", "tree", "log_index", name=op.f("pk_search_index")),
        sqlite_with_rowid=False,
    )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    """Refuse UPDATE and DELETE on the tables that make up the log's history."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION tlog_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'tlog: % on % refused: the table is append-only', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION tlog_refuse_change()"
            )
            # TRUNCATE bypasses row triggers; refuse it with a statement trigger.
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tlog_refuse_change()"
            )
    elif dialect == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'tlog: {action} on {table} refused: "
                    "the table is append-only'); END"
                )
    else:  # pragma: no cover
        raise RuntimeError(f"unsupported database dialect {dialect!r}")


def downgrade() -> None:
    raise RuntimeError("the tlog schema cannot be downgraded: the log is append-only")
