"""wf_report_numbers: the forwarding bureau and "already known" as columns, not text.

A forwarded number's bureau was kept as the text "to <bureau>" in ``detail`` and parsed
back when the report was withdrawn; the police's record that the bureau already knew a
number was the text "already known to this bureau". Both become columns, filled from the
text rows already hold, which then keep only their reason.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_ALREADY_KNOWN = "already known to this bureau"


# add_column, not batch mode: no table is recreated.
def upgrade() -> None:
    op.add_column('wf_report_numbers', sa.Column('forwarded_to', sa.String(length=253),
                                                 nullable=True))
    op.add_column('wf_report_numbers', sa.Column('already_known', sa.Boolean(),
                                                 server_default=sa.false(), nullable=False))
    lines = sa.table('wf_report_numbers', sa.column('status', sa.String),
                     sa.column('detail', sa.Text), sa.column('forwarded_to', sa.String),
                     sa.column('already_known', sa.Boolean))
    forwarded = (lines.c.status == 'forwarded') & lines.c.detail.like('to %')
    op.execute(lines.update().where(forwarded).values(
        forwarded_to=sa.func.substr(lines.c.detail, 4), detail=''))
    op.execute(lines.update().where(lines.c.detail == _ALREADY_KNOWN).values(
        already_known=sa.true(), detail=''))


def downgrade() -> None:
    lines = sa.table('wf_report_numbers', sa.column('detail', sa.Text),
                     sa.column('forwarded_to', sa.String),
                     sa.column('already_known', sa.Boolean))
    op.execute(lines.update().where(lines.c.forwarded_to.is_not(None)).values(
        detail='to ' + lines.c.forwarded_to))
    op.execute(lines.update().where(lines.c.already_known == sa.true()).values(
        detail=_ALREADY_KNOWN))
    with op.batch_alter_table('wf_report_numbers') as batch:
        batch.drop_column('already_known')
        batch.drop_column('forwarded_to')
