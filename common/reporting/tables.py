"""The one Markdown table writer of every generated document (comparison.md, model cards, SUMMARY.md,
the README's results table)."""

from __future__ import annotations

from collections.abc import Callable


def cell(v) -> str:
    """The default cell: thousands separators for integers, two decimals for floats, "" for None."""
    return "" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.2f}" if isinstance(v, float) else str(v)


def markdown(rows: list[dict], columns: list[str] | None = None, fmt: Callable[[object], str] = cell,
             blank: bool = True) -> list[str]:
    """Lines of a Markdown table of `rows` (dicts; `columns` default to the first row's keys), each value
    through `fmt` (strings pass as they are); a blank line after it unless `blank` is False. No rows: the
    header alone when `columns` are given, else nothing."""
    if not rows and not columns:
        return []
    cols = columns or list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
             *("| " + " | ".join(v if isinstance(v := r.get(c), str) else fmt(v) for c in cols) + " |" for r in rows)]
    return [*lines, ""] if blank else lines
