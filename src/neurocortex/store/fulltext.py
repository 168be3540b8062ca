"""Full-text search over report bodies (`full` and `summary`), with each database's own index: SQLite's
FTS5 table `report_fts` and PostgreSQL's GIN index on a `simple` tsvector (both made by migration 0007).

Both take the words of the text, every one of which must appear (in any order); quoting keeps FTS5's
query syntax away from user input.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, literal_column, select, text

from neurocortex.store import tables as t


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
        document = func.to_tsvector("simple", t.report.c.full + " " + t.report.c.summary)
        reports = select(t.report.c.job).where(
            document.op("@@")(func.plainto_tsquery("simple", " ".join(words)))
        )
    return t.job.c.id.in_(reports)
