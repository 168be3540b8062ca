"""named API keys

Revision ID: 0006
Revises: 0008
Create Date: 2026-11-23 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apiKey",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("expiresAt", sa.BigInteger(), nullable=True),
        sa.Column("revokedAt", sa.BigInteger(), nullable=True),
        sa.Column("createdBy", sa.String(length=255), nullable=False),
        sa.Column("createdAt", sa.BigInteger(), nullable=False),
        sa.Column("updatedBy", sa.String(length=255), nullable=True),
        sa.Column("updatedAt", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["user"], ["user.id"], name=op.f("fk_apiKey_user_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apiKey")),
        sa.UniqueConstraint("digest", name=op.f("uq_apiKey_digest")),
    )
    with op.batch_alter_table("apiKey", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apiKey_user"), ["user"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("apiKey", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apiKey_user"))
    op.drop_table("apiKey")
