"""The agencies' workflow tables (nodes/models.py) and the carrier subscriber system.

Plain tables: workflow state changes as work progresses; the ledger (0001) is the
append-only record of it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:09:01.130930
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sub_outlets',
    sa.Column('outlet_code', sa.String(length=64), nullable=False),
    sa.Column('outlet_name', sa.String(length=256), nullable=False),
    sa.Column('agent', sa.String(length=256), nullable=False),
    sa.Column('address', sa.String(length=512), nullable=False),
    sa.PrimaryKeyConstraint('outlet_code', name=op.f('pk_sub_outlets'))
    )
    op.create_table('sub_subscribers',
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ported_to', sa.String(length=253), nullable=False),
    sa.Column('subscriber_name', sa.String(length=256), nullable=False),
    sa.Column('id_number', sa.String(length=64), nullable=False),
    sa.Column('real_name_state', sa.String(length=16), nullable=False),
    sa.Column('province', sa.String(length=8), nullable=False),
    sa.Column('registered_at', sa.BigInteger(), nullable=True),
    sa.Column('activated_at', sa.BigInteger(), nullable=True),
    sa.Column('outlet_code', sa.String(length=64), nullable=False),
    sa.Column('protected_reason', sa.Text(), nullable=False),
    sa.Column('suspended_at', sa.BigInteger(), nullable=True),
    sa.Column('suspended_by', sa.LargeBinary(length=16), nullable=True),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_sub_subscribers'))
    )
    with op.batch_alter_table('sub_subscribers', schema=None) as batch_op:
        batch_op.create_index('ix_sub_subscribers_id', ['id_number'], unique=False)

    op.create_table('wf_appeals',
    sa.Column('appeal_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('carrier', sa.String(length=253), nullable=False),
    sa.Column('bureau', sa.String(length=253), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('grounds', sa.Text(), nullable=False),
    sa.Column('notice_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('decide_by', sa.BigInteger(), nullable=False),
    sa.Column('decided_at', sa.BigInteger(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('reasoning', sa.Text(), nullable=False),
    sa.Column('decision_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('escalated_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('appeal_id', name=op.f('pk_wf_appeals'))
    )
    op.create_table('wf_case_requests',
    sa.Column('request_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('police', sa.String(length=253), nullable=False),
    sa.Column('carrier', sa.String(length=253), nullable=False),
    sa.Column('case_number', sa.String(length=128), nullable=False),
    sa.Column('legal_authorization', sa.String(length=256), nullable=False),
    sa.Column('numbers', sa.Text(), nullable=False),
    sa.Column('questions', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('answered_at', sa.BigInteger(), nullable=True),
    sa.Column('response_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('escalated_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_wf_case_requests'))
    )
    op.create_table('wf_channel_reports',
    sa.Column('report_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('reporter', sa.String(length=253), nullable=False),
    sa.Column('outlet_code', sa.String(length=64), nullable=False),
    sa.Column('outlet_name', sa.String(length=256), nullable=False),
    sa.Column('agent', sa.String(length=256), nullable=False),
    sa.Column('address', sa.String(length=512), nullable=False),
    sa.Column('carrier_node', sa.String(length=253), nullable=False),
    sa.Column('numbers', sa.Text(), nullable=False),
    sa.Column('findings', sa.Text(), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.Column('penalty_id', sa.LargeBinary(length=16), nullable=True),
    sa.PrimaryKeyConstraint('report_id', name=op.f('pk_wf_channel_reports'))
    )
    with op.batch_alter_table('wf_channel_reports', schema=None) as batch_op:
        batch_op.create_index('ix_wf_channel_reports_outlet', ['outlet_code'], unique=False)

    op.create_table('wf_escalations',
    sa.Column('escalation_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('raised_by', sa.String(length=253), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('subject_node', sa.String(length=253), nullable=False),
    sa.Column('subject_message_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('escalation_id', name=op.f('pk_wf_escalations'))
    )
    op.create_table('wf_id_holders',
    sa.Column('report_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('id_hmac', sa.LargeBinary(length=32), nullable=False),
    sa.Column('carrier', sa.String(length=253), nullable=False),
    sa.Column('province', sa.String(length=8), nullable=False),
    sa.Column('hmac_key_id', sa.String(length=64), nullable=False),
    sa.Column('card_count', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('report_id', 'id_hmac', name=op.f('pk_wf_id_holders'))
    )
    op.create_table('wf_notice_numbers',
    sa.Column('notice_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('answered_at', sa.BigInteger(), nullable=True),
    sa.Column('answer_id', sa.LargeBinary(length=16), nullable=True),
    sa.PrimaryKeyConstraint('notice_id', 'number', name=op.f('pk_wf_notice_numbers'))
    )
    with op.batch_alter_table('wf_notice_numbers', schema=None) as batch_op:
        batch_op.create_index('ix_wf_notice_numbers_number', ['number'], unique=False)

    op.create_table('wf_notices',
    sa.Column('notice_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('bureau', sa.String(length=253), nullable=False),
    sa.Column('carrier', sa.String(length=253), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('numbers_total', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.BigInteger(), nullable=True),
    sa.Column('escalated_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('notice_id', name=op.f('pk_wf_notices'))
    )
    with op.batch_alter_table('wf_notices', schema=None) as batch_op:
        batch_op.create_index('ix_wf_notices_open', ['closed_at', 'deadline'], unique=False)

    op.create_table('wf_numbers',
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('carrier_node', sa.String(length=253), nullable=False),
    sa.Column('notice_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('tried', sa.Text(), nullable=False),
    sa.Column('outlet_code', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_wf_numbers'))
    )
    with op.batch_alter_table('wf_numbers', schema=None) as batch_op:
        batch_op.create_index('ix_wf_numbers_status', ['status'], unique=False)

    op.create_table('wf_penalties',
    sa.Column('penalty_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('bureau', sa.String(length=253), nullable=False),
    sa.Column('carrier', sa.String(length=253), nullable=False),
    sa.Column('outlet_code', sa.String(length=64), nullable=False),
    sa.Column('violation', sa.Text(), nullable=False),
    sa.Column('legal_basis', sa.String(length=256), nullable=False),
    sa.Column('measure', sa.Text(), nullable=False),
    sa.Column('numbers_total', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('penalty_id', name=op.f('pk_wf_penalties'))
    )
    op.create_table('wf_progress',
    sa.Column('report_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('bureau', sa.String(length=253), nullable=False),
    sa.Column('province', sa.String(length=8), nullable=False),
    sa.Column('as_of', sa.BigInteger(), nullable=False),
    sa.Column('counts_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('report_id', name=op.f('pk_wf_progress'))
    )
    op.create_table('wf_report_numbers',
    sa.Column('report_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('carrier_node', sa.String(length=253), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.Column('feedback_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('report_id', 'number', name=op.f('pk_wf_report_numbers'))
    )
    with op.batch_alter_table('wf_report_numbers', schema=None) as batch_op:
        batch_op.create_index('ix_wf_report_numbers_number', ['number'], unique=False)
        batch_op.create_index('ix_wf_report_numbers_open', ['final', 'report_id'], unique=False)

    op.create_table('wf_reports',
    sa.Column('report_id', sa.LargeBinary(length=16), nullable=False),
    sa.Column('origin', sa.String(length=253), nullable=False),
    sa.Column('counterpart', sa.String(length=253), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('case_number', sa.String(length=128), nullable=False),
    sa.Column('numbers_total', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('feedback_due_at', sa.BigInteger(), nullable=False),
    sa.Column('withdrawn_at', sa.BigInteger(), nullable=True),
    sa.Column('escalated_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('report_id', name=op.f('pk_wf_reports'))
    )


def downgrade() -> None:
    op.drop_table('wf_reports')
    with op.batch_alter_table('wf_report_numbers', schema=None) as batch_op:
        batch_op.drop_index('ix_wf_report_numbers_open')
        batch_op.drop_index('ix_wf_report_numbers_number')

    op.drop_table('wf_report_numbers')
    op.drop_table('wf_progress')
    op.drop_table('wf_penalties')
    with op.batch_alter_table('wf_numbers', schema=None) as batch_op:
        batch_op.drop_index('ix_wf_numbers_status')

    op.drop_table('wf_numbers')
    with op.batch_alter_table('wf_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_wf_notices_open')

    op.drop_table('wf_notices')
    with op.batch_alter_table('wf_notice_numbers', schema=None) as batch_op:
        batch_op.drop_index('ix_wf_notice_numbers_number')

    op.drop_table('wf_notice_numbers')
    op.drop_table('wf_id_holders')
    op.drop_table('wf_escalations')
    with op.batch_alter_table('wf_channel_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_wf_channel_reports_outlet')

    op.drop_table('wf_channel_reports')
    op.drop_table('wf_case_requests')
    op.drop_table('wf_appeals')
    with op.batch_alter_table('sub_subscribers', schema=None) as batch_op:
        batch_op.drop_index('ix_sub_subscribers_id')

    op.drop_table('sub_subscribers')
    op.drop_table('sub_outlets')
