"""scan worker and heartbeat

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08

Additive only: the running try's worker and its lease heartbeat on scans (jobs.lease), so
``costdna status`` can say "worker lost, retrying".
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker')
