"""operations: audit log, retention, cache invalidation on configuration change, report full-text index

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# SQLite: an FTS5 index over the report bodies, kept by triggers (external content: no second copy)
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE report_fts USING fts5(full, summary, content='report', content_rowid='rowid')",
    "CREATE TRIGGER report_fts_insert AFTER INSERT ON report BEGIN "
    "INSERT INTO report_fts(rowid, full, summary) VALUES (new.rowid, new.full, new.summary); END",
    "CREATE TRIGGER report_fts_delete AFTER DELETE ON report BEGIN "
    "INSERT INTO report_fts(report_fts, rowid, full, summary) VALUES ('delete', old.rowid, old.full, old.summary); "
    "END",
    "CREATE TRIGGER report_fts_update AFTER UPDATE ON report BEGIN "
    "INSERT INTO report_fts(report_fts, rowid, full, summary) VALUES ('delete', old.rowid, old.full, old.summary); "
    "INSERT INTO report_fts(rowid, full, summary) VALUES (new.rowid, new.full, new.summary); END",
    "INSERT INTO report_fts(report_fts) VALUES ('rebuild')",
]
# PostgreSQL: a GIN index on the expression the full-text search uses (store/fulltext.py), over the
# beginning of long reports: a tsvector cannot exceed 1 MB and a report insert must never fail for it
POSTGRES_FTS = (
    "CREATE INDEX ix_report_fulltext ON report USING gin "
    "((to_tsvector('simple', left(\"full\", 100000) || ' ' || left(summary, 10000))))"
)


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("createdAt", sa.BigInteger(), nullable=False),
        sa.Column("createdBy", sa.String(length=255), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("objectType", sa.String(length=32), nullable=False),
        sa.Column("objectId", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index("ix_audit_created", ["createdAt"], unique=False)
        batch_op.create_index("ix_audit_org_created", ["organization", "createdAt"], unique=False)
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention", sa.JSON(), nullable=True))
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.add_column(sa.Column("configuredAt", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(POSTGRES_FTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS report_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS report_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_report_fulltext")
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.drop_column("configuredAt")
    with op.batch_alter_table("organization", schema=None) as batch_op:
        batch_op.drop_column("retention")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_org_created")
        batch_op.drop_index("ix_audit_created")
    op.drop_table("audit")
