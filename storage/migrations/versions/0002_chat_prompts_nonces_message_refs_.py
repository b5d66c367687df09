"""chat prompts, nonces, message refs, evidence

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Additive only: new tables, new nullable or defaulted columns, new indexes (tests/test_migrations.py).
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('chat_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_events')),
    sa.UniqueConstraint('platform', 'event_id', name=op.f('uq_chat_events_platform_event_id'))
    )
    op.create_table('oauth_states',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=100), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_states')),
    sa.UniqueConstraint('state', name=op.f('uq_oauth_states_state'))
    )
    op.create_table('prompts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('scan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('arn', sa.Text(), nullable=False),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('asked_by', sa.String(length=100), nullable=False),
    sa.Column('answered_by', sa.String(length=100), nullable=True),
    sa.Column('team', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('chat_refs', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_prompts_account_id_accounts')),
    sa.ForeignKeyConstraint(['scan_id'], ['scans.id'], name=op.f('fk_prompts_scan_id_scans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompts'))
    )
    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.create_index('ix_prompts_account_status', ['account_id', 'status'], unique=False)

    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nonce', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('chat_refs', sa.JSON(), nullable=True))

    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bot_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('app_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('details', sa.JSON(), nullable=True))

    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evidence', sa.JSON(), nullable=True))

    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_refs', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_column('chat_refs')

    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_column('evidence')

    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_column('details')
        batch_op.drop_column('app_id')
        batch_op.drop_column('bot_id')

    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.drop_column('chat_refs')
        batch_op.drop_column('nonce')

    with op.batch_alter_table('prompts', schema=None) as batch_op:
        batch_op.drop_index('ix_prompts_account_status')

    op.drop_table('prompts')
    op.drop_table('oauth_states')
    op.drop_table('chat_events')
