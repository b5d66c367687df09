"""the watch: spikes, watched files, change events and deploys, team routes, expected levels, switches

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Additive only: new tables for the hourly watch (issue 9).
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False)


def _ref(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False)


def upgrade() -> None:
    op.create_table('spikes',
    _id(),
    _ref('account_id'),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('arn', sa.Text(), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('instance_type', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ongoing', sa.Boolean(), nullable=False),
    sa.Column('peak_usd_per_hour', sa.Float(), nullable=False),
    sa.Column('baseline_usd_per_hour', sa.Float(), nullable=False),
    sa.Column('extra_usd', sa.Float(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('history_hours', sa.Integer(), nullable=False),
    sa.Column('owner_team', sa.String(length=100), nullable=False),
    sa.Column('owner_confidence', sa.Float(), nullable=False),
    sa.Column('owner_source', sa.String(length=16), nullable=False),
    sa.Column('cause', sa.JSON(), nullable=True),
    sa.Column('people', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('snooze_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivery', sa.String(length=16), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('chat_refs', sa.JSON(), nullable=False),
    sa.Column('series', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_spikes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spikes')),
    sa.UniqueConstraint('account_id', 'key', name=op.f('uq_spikes_account_id_key'))
    )
    with op.batch_alter_table('spikes', schema=None) as batch_op:
        batch_op.create_index('ix_spikes_account_status', ['account_id', 'status'], unique=False)
        batch_op.create_index('ix_spikes_account_arn', ['account_id', 'arn'], unique=False)

    op.create_table('watch_files',
    _id(),
    _ref('account_id'),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('part', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_watch_files_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_watch_files')),
    sa.UniqueConstraint('account_id', 'path', name=op.f('uq_watch_files_account_id_path'))
    )
    op.create_table('watch_changes',
    _id(),
    _ref('account_id'),
    sa.Column('deploys', sa.JSON(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_watch_changes_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_watch_changes')),
    sa.UniqueConstraint('account_id', name=op.f('uq_watch_changes_account_id'))
    )
    op.create_table('watch_change_parts',
    _id(),
    _ref('account_id'),
    sa.Column('blob', sa.LargeBinary(), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.Column('min_time', sa.Float(), nullable=False),
    sa.Column('max_time', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_watch_change_parts_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_watch_change_parts'))
    )
    with op.batch_alter_table('watch_change_parts', schema=None) as batch_op:
        batch_op.create_index('ix_watch_change_parts_account', ['account_id'], unique=False)

    op.create_table('team_routes',
    _id(),
    _ref('workspace_id'),
    sa.Column('team', sa.String(length=100), nullable=False),
    sa.Column('users', sa.JSON(), nullable=False),
    sa.Column('channel', sa.String(length=100), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_team_routes_workspace_id_workspaces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team_routes')),
    sa.UniqueConstraint('workspace_id', 'team', name=op.f('uq_team_routes_workspace_id_team'))
    )
    op.create_table('expected_levels',
    _id(),
    _ref('account_id'),
    sa.Column('arn', sa.Text(), nullable=False),
    sa.Column('usd_per_hour', sa.Float(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_expected_levels_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_expected_levels')),
    sa.UniqueConstraint('account_id', 'arn', name=op.f('uq_expected_levels_account_id_arn'))
    )
    op.create_table('app_switches',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_app_switches'))
    )


def downgrade() -> None:
    op.drop_table('app_switches')
    op.drop_table('expected_levels')
    op.drop_table('team_routes')
    with op.batch_alter_table('watch_change_parts', schema=None) as batch_op:
        batch_op.drop_index('ix_watch_change_parts_account')
    op.drop_table('watch_change_parts')
    op.drop_table('watch_changes')
    op.drop_table('watch_files')
    with op.batch_alter_table('spikes', schema=None) as batch_op:
        batch_op.drop_index('ix_spikes_account_arn')
        batch_op.drop_index('ix_spikes_account_status')
    op.drop_table('spikes')
