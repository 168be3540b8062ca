"""Substring search over a job's observable (its data, or its file's name), backed by a trigram index.

A `LIKE '%text%'` cannot use a B-tree index, so searching 100,000 jobs scanned them all. Migration 0011
builds a trigram index instead, which answers a substring of three characters or more:
- SQLite: the FTS5 table `job_text` (trigram tokenizer), one row per job under the job's rowid, kept in
  step with the job table by triggers (insert, update of data/attachment, delete). A migration that
  recreates the job table on SQLite (batch mode) must recreate these triggers and call REBUILD_SQLITE.
- PostgreSQL: a GIN index (pg_trgm) on the same text expression, which ILIKE then uses; PostgreSQL keeps
  it up to date by itself.
Shorter texts have no trigram: they fall back to a plain LIKE."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import ColumnElement

from neurocortex.store import tables as t

FTS_TABLE = "job_text"
TRIGRAM_INDEX = "ix_job_text_trgm"
# what is searched: the data, then the file's name, a line feed apart (no one searches across both)
SQLITE_TEXT = "coalesce({row}.data, '') || char(10) || coalesce(json_extract({row}.attachment, '$.name'), '')"
POSTGRESQL_TEXT = "(coalesce(job.data, '') || chr(10) || coalesce(job.attachment ->> 'name', ''))"
REBUILD_SQLITE = (
    f"INSERT INTO {FTS_TABLE} (rowid, text) SELECT rowid, {SQLITE_TEXT.format(row='job')} FROM job"
)
MIN_LENGTH = 3  # a trigram index knows nothing shorter


def outside_models(name: str | None, type_: str, _parents: dict) -> bool:
    """Alembic's include_name filter: the FTS5 table with its shadow tables and the pg_trgm index are built by
    migration 0011 and are not in tables.metadata (neither dialect has the other's)."""
    if type_ == "table" and name is not None and name.startswith(FTS_TABLE):
        return False
    return not (type_ == "index" and name == TRIGRAM_INDEX)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matches(dialect: str, text: str) -> ColumnElement[bool]:
    """Jobs whose data or file name contains `text`, case-insensitively."""
    pattern = f"%{_escape_like(text)}%"
    if len(text) < MIN_LENGTH:
        name = t.job.c.attachment["name"].as_string()
        return sa.or_(t.job.c.data.ilike(pattern, escape="\\"), name.ilike(pattern, escape="\\"))
    if dialect == "postgresql":
        return sa.literal_column(POSTGRESQL_TEXT).ilike(pattern, escape="\\")
    # an FTS5 phrase: its trigrams in a row, i.e. the text as a substring (quotes doubled inside)
    phrase = '"' + text.replace('"', '""') + '"'
    hits = (
        sa.select(sa.literal_column("rowid"))
        .select_from(sa.table(FTS_TABLE))
        .where(sa.literal_column(FTS_TABLE).op("MATCH")(phrase))
    )
    return sa.literal_column("job.rowid").in_(hits)
