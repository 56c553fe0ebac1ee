"""Frozen shards stay frozen: a tree row may only ever be frozen, and a frozen
tree takes no new signed head.

After a key rotation (``tlog rotate``) the old tree's last checkpoint is its
final word. The sequencer already refuses to extend a frozen tree; these
triggers make the database refuse it too, whatever code or SQL shell tries,
so a frozen shard can never be made to sign a second, longer history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ONLY_FREEZE = "tlog: trees rows are never deleted and only ever change by being frozen once"
_FROZEN = "tlog: the tree is a frozen shard (key rotation); it takes no new tree head"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION tlog_trees_only_freeze() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND OLD.frozen_at IS NULL AND NEW.frozen_at IS NOT NULL
                   AND (NEW.id, NEW.purpose, NEW.tree_id, NEW.origin, NEW.log_id, NEW.created_at)
                     = (OLD.id, OLD.purpose, OLD.tree_id, OLD.origin, OLD.log_id, OLD.created_at) THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION '{_ONLY_FREEZE}';
            END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER trees_only_freeze BEFORE UPDATE OR DELETE ON trees "
            "FOR EACH ROW EXECUTE FUNCTION tlog_trees_only_freeze()"
        )
        op.execute(
            "CREATE TRIGGER trees_no_truncate BEFORE TRUNCATE ON trees FOR EACH STATEMENT EXECUTE FUNCTION tlog_refuse_change()"
        )
        op.execute(
            f"""
            CREATE FUNCTION tlog_head_not_frozen() RETURNS trigger AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM trees WHERE id = NEW.tree AND frozen_at IS NOT NULL) THEN
                    RAISE EXCEPTION '{_FROZEN}';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER tree_heads_not_frozen BEFORE INSERT ON tree_heads "
            "FOR EACH ROW EXECUTE FUNCTION tlog_head_not_frozen()"
        )
    else:
        op.execute(f"CREATE TRIGGER trees_no_delete BEFORE DELETE ON trees BEGIN SELECT RAISE(ABORT, '{_ONLY_FREEZE}'); END")
        op.execute(
            "CREATE TRIGGER trees_only_freeze BEFORE UPDATE ON trees WHEN NOT ("
            "OLD.frozen_at IS NULL AND NEW.frozen_at IS NOT NULL AND NEW.id = OLD.id AND NEW.purpose = OLD.purpose "
            "AND NEW.tree_id = OLD.tree_id AND NEW.origin = OLD.origin AND NEW.log_id = OLD.log_id "
            f"AND NEW.created_at = OLD.created_at) BEGIN SELECT RAISE(ABORT, '{_ONLY_FREEZE}'); END"
        )
        op.execute(
            "CREATE TRIGGER tree_heads_not_frozen BEFORE INSERT ON tree_heads "
            "WHEN (SELECT frozen_at FROM trees WHERE id = NEW.tree) IS NOT NULL "
            f"BEGIN SELECT RAISE(ABORT, '{_FROZEN}'); END"
        )


def downgrade() -> None:
    raise RuntimeError("the tlog schema cannot be downgraded: the log is append-only")
