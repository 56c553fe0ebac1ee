"""Each entry's Rekor SET, signed once at integration and stored with it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

A nullable column, so the upgrade is instant on any size of log (no table
rewrite on SQLite or PostgreSQL). Entries logged before this revision keep
NULL, as do bulk-loaded ones: the API signs their SETs on each read, as it
did for every entry before. The append-only triggers of revision 0001 refuse
any UPDATE of an entries row, so the column is only ever written by the
entry's own INSERT; they need no change.

Unlike the earlier revisions this one can be downgraded: the column holds
nothing but signatures the log can make again, so dropping it loses no
history, and it lets a deployment roll back to code that predates it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("entries", sa.Column("signed_entry_timestamp", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # SQLite (>= 3.35) drops a column in place; the triggers name no column, so they stay.
    op.drop_column("entries", "signed_entry_timestamp")
