"""ledger_leaves (peer, idx): a party's entries in ledger order, read straight off an index.

GetEntries answers a caller only with the entries it is party to; with the index on
``peer`` alone the database sorted all of that party's rows (leaves included) for every
page. The index replaces that one (a lookup by peer alone still uses it). No row changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 01:10:00
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


# Plain index statements, not batch mode: a batch that recreated the table would drop
# the append-only triggers with it.
def upgrade() -> None:
    op.create_index('ix_ledger_leaves_peer_idx', 'ledger_leaves', ['peer', 'idx'],
                    unique=False)
    op.drop_index('ix_ledger_leaves_peer', table_name='ledger_leaves')


def downgrade() -> None:
    op.create_index('ix_ledger_leaves_peer', 'ledger_leaves', ['peer'], unique=False)
    op.drop_index('ix_ledger_leaves_peer_idx', table_name='ledger_leaves')
