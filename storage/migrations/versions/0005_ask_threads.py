"""ask threads: the context a follow-up in the same chat thread starts from

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Additive only: one new table for the ask agent (issue 10).
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ask_threads',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('workspace', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=100), nullable=False),
    sa.Column('thread_ts', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=True),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ask_threads')),
    sa.UniqueConstraint('platform', 'channel', 'thread_ts', name=op.f('uq_ask_threads_platform_channel_thread_ts'))
    )
    with op.batch_alter_table('ask_threads', schema=None) as batch_op:
        batch_op.create_index('ix_ask_threads_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ask_threads', schema=None) as batch_op:
        batch_op.drop_index('ix_ask_threads_expires_at')
    op.drop_table('ask_threads')
