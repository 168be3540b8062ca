"""job text search index (trigrams), dashboard covering index, cache hits per day

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-23 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None

# the searched text of a job (see neurocortex/store/job_text.py, which queries it)
SQLITE_TEXT = "coalesce({row}.data, '') || char(10) || coalesce(json_extract({row}.attachment, '$.name'), '')"
POSTGRESQL_TEXT = "(coalesce(data, '') || chr(10) || coalesce(attachment ->> 'name', ''))"


def upgrade() -> None:
    op.create_table(
        "cache_hit",
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("organization", "day"),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_org_created_stats",
            ["organization", "createdAt", "status", "dataType", "workerName"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX ix_job_text_trgm ON job USING gin ({POSTGRESQL_TEXT} gin_trgm_ops)")
        return
    op.execute("CREATE VIRTUAL TABLE job_text USING fts5(text, tokenize = 'trigram')")
    op.execute(f"INSERT INTO job_text (rowid, text) SELECT rowid, {SQLITE_TEXT.format(row='job')} FROM job")
    op.execute(
        "CREATE TRIGGER job_text_insert AFTER INSERT ON job BEGIN "
        f"INSERT INTO job_text (rowid, text) VALUES (new.rowid, {SQLITE_TEXT.format(row='new')}); END"
    )
    op.execute(
        "CREATE TRIGGER job_text_update AFTER UPDATE OF data, attachment ON job BEGIN "
        f"UPDATE job_text SET text = {SQLITE_TEXT.format(row='new')} WHERE rowid = new.rowid; END"
    )
    op.execute(
        "CREATE TRIGGER job_text_delete AFTER DELETE ON job BEGIN "
        "DELETE FROM job_text WHERE rowid = old.rowid; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_job_text_trgm")
    else:
        for trigger in ("job_text_insert", "job_text_update", "job_text_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS job_text")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_org_created_stats")
    op.drop_table("cache_hit")
