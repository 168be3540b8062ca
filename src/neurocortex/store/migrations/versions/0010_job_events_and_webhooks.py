"""job events (/api/events) and webhooks

Revision ID: 0010
Revises: 0011
Create Date: 2026-11-23 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("createdAt", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_event")),
        sa.UniqueConstraint("seq", name=op.f("uq_job_event_seq")),
    )
    op.create_index("ix_job_event_org_seq", "job_event", ["organization", "seq"], unique=False)
    op.create_index(op.f("ix_job_event_createdAt"), "job_event", ["createdAt"], unique=False)
    counter = op.create_table(
        "job_event_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_event_counter")),
    )
    op.bulk_insert(counter, [{"id": 1, "last": 0}])
    op.create_table(
        "webhook",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organization", sa.String(length=255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("createdBy", sa.String(length=255), nullable=False),
        sa.Column("createdAt", sa.BigInteger(), nullable=False),
        sa.Column("updatedBy", sa.String(length=255), nullable=True),
        sa.Column("updatedAt", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization"], ["organization.id"], name=op.f("fk_webhook_organization_organization")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook")),
    )
    op.create_index(op.f("ix_webhook_organization"), "webhook", ["organization"], unique=False)
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("webhook", sa.String(length=32), nullable=False),
        sa.Column("event", sa.BigInteger(), nullable=False),
        sa.Column("eventType", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("nextAttemptAt", sa.BigInteger(), nullable=True),
        sa.Column("lastStatusCode", sa.Integer(), nullable=True),
        sa.Column("lastError", sa.Text(), nullable=True),
        sa.Column("lastAttemptAt", sa.BigInteger(), nullable=True),
        sa.Column("deliveredAt", sa.BigInteger(), nullable=True),
        sa.Column("createdAt", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook"], ["webhook.id"], name=op.f("fk_webhook_delivery_webhook_webhook"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
    )
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["status", "nextAttemptAt"], unique=False)
    op.create_index("ix_webhook_delivery_event", "webhook_delivery", ["event"], unique=False)
    op.create_index("ix_webhook_delivery_webhook", "webhook_delivery", ["webhook", "createdAt"], unique=False)


def downgrade() -> None:
    op.drop_table("webhook_delivery")
    op.drop_index(op.f("ix_webhook_organization"), table_name="webhook")
    op.drop_table("webhook")
    op.drop_table("job_event_counter")
    op.drop_index(op.f("ix_job_event_createdAt"), table_name="job_event")
    op.drop_index("ix_job_event_org_seq", table_name="job_event")
    op.drop_table("job_event")
