"""Tiny harness shared by the benchmark modules.

Each ``bench/bench_<topic>.py`` exposes ``run(quick: bool) -> Section``.
``python -m bench`` runs them all in one process, one after the other, and
rewrites ``docs/benchmarks.md`` from the sections. Ratios between rows of one
section come from the same run; absolute numbers are only context.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")

__all__ = ["Row", "Section", "machine", "percentile", "progress", "rate", "timed", "track"]


@dataclass
class Row:
    """One measured contender: ``name``, its values by column, and notes."""

    name: str
    values: dict[str, float | str]
    note: str = ""


@dataclass
class Section:
    """A benchmark's result: a titled table plus the prose that explains it.

    ``baseline`` names the row that ratios are taken against (``ratio_of``
    is the column the ratio is computed from; higher is better unless
    ``lower_is_better``).
    """

    title: str
    columns: list[str]
    rows: list[Row]
    baseline: str | None = None
    ratio_of: str | None = None
    lower_is_better: bool = False
    intro: str = ""
    conclusions: list[str] = field(default_factory=list)

    def ratio(self, name: str) -> float | None:
        """Ratio of row ``name`` to the baseline row, on ``ratio_of``."""
        if self.baseline is None or self.ratio_of is None:
            return None
        by_name = {r.name: r for r in self.rows}
        a, b = (
            by_name[name].values.get(self.ratio_of),
            by_name[self.baseline].values.get(self.ratio_of),
        )
        if not isinstance(a, float | int) or not isinstance(b, float | int) or not a or not b:
            return None
        return float(b) / float(a) if self.lower_is_better else float(a) / float(b)

    def to_markdown(self) -> str:
        """Render as a markdown section."""
        cols = list(self.columns)
        show_ratio = self.baseline is not None and self.ratio_of is not None
        header = (
            ["contender", *cols] + ([f"ratio vs {self.baseline}"] if show_ratio else []) + ["notes"]
        )
        lines = [f"## {self.title}", ""]
        if self.intro:
            lines += [self.intro.strip(), ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in self.rows:
            cells = [row.name] + [_fmt(row.values.get(c, "")) for c in cols]
            if show_ratio:
                r = self.ratio(row.name)
                cells.append("" if r is None else f"{r:.2f}x")
            cells.append(row.note)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for c in self.conclusions:
            lines.append(f"- {c}")
        if self.conclusions:
            lines.append("")
        return "\n".join(lines)


def _fmt(v: float | str) -> str:
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.2f}"
    return f"{v:.4g}"


def timed(fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Best-of-``repeat`` wall time of ``fn()`` in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rate(count: int, seconds: float) -> float:
    """Operations per second."""
    return count / seconds if seconds > 0 else float("inf")


def percentile(samples: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``samples``."""
    if not samples:
        return float("nan")
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=1000, method="inclusive")[min(998, int(p * 10) - 1)]


def progress() -> Progress:
    """A rich progress bar for long benchmark loops."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )


def machine() -> str:
    """One line describing the machine the run happened on."""
    import os

    impl = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{impl}, {os.cpu_count()} cores, {platform.machine()}"


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Iterate with a progress bar."""
    with progress() as bar:
        yield from bar.track(items, description=description, total=total)
