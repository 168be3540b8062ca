"""Full-text search over report bodies (`full` and `summary`), with each database's own index: SQLite's
FTS5 table `report_fts` and PostgreSQL's GIN index on a `simple` tsvector (both made by migration 0007).

Both take the words of the text, every one of which must appear (in any order); quoting keeps FTS5's
query syntax away from user input. PostgreSQL indexes the first 100 000 characters of a report and
10 000 of its summary: a tsvector cannot exceed 1 MB, and a longer report must not fail its insert.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, bindparam, literal_column, select, text

from neurocortex.store import tables as t

# exactly the expression of migration 0007's index, in SQL, so that the planner recognises it
POSTGRES_DOCUMENT = (
    "to_tsvector('simple', left(report.\"full\", 100000) || ' ' || left(report.summary, 10000))"
)


def _fts5_query(words: list[str]) -> str:
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def jobs_with_report_matching(is_sqlite: bool, query: str) -> ColumnElement[bool]:
    """A condition on `job`: its report contains every word of `query`."""
    words = query.split()
    if not words:
        return t.job.c.id.is_(None)  # nothing to look for finds nothing
    if is_sqlite:
        matching_rows = text("SELECT rowid FROM report_fts WHERE report_fts MATCH :fts").bindparams(
            fts=_fts5_query(words)
        )
        reports = select(t.report.c.job).where(literal_column("report.rowid").in_(matching_rows))
    else:
        matches = text(f"{POSTGRES_DOCUMENT} @@ plainto_tsquery('simple', :words)").bindparams(
            bindparam("words", " ".join(words))
        )
        reports = select(t.report.c.job).where(matches)
    return t.job.c.id.in_(reports)
