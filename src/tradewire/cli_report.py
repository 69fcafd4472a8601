"""``tradewire report RUN_ID``: a run's metrics as a table, an equity chart (PNG) and an HTML page.

Reads the store of ``--data-dir`` (safe while a gateway serves it: SQLite
WAL), rebuilds the run's trades with the analytics core exactly like
``GET /api/runs/{id}/metrics``, and writes into ``--out`` (default
``./tradewire-report-<run_id>``):

* ``equity.png``: equity curve and drawdown (matplotlib, Agg backend);
* ``report.html``: self-contained (the PNG as a base64 data URI), with the
  metrics table and the trades table.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradewire.analytics import Fill
from tradewire.cli import common_options, reports_errors, settings_from
from tradewire.errors import TradewireError
from tradewire.ingest.analytics_json import drawdown_series, metrics_document, trades_document
from tradewire.ingest.run_analytics import (
    RunAnalysis,
    analyse_fills,
    load_fill_page,
    load_run_row,
)
from tradewire.projections import all_projectors
from tradewire.store.sqlite import SqliteStore, open_store

__all__ = ["UnknownRunError", "render_equity_png", "report"]

_PAGE: Final = 5000


class UnknownRunError(TradewireError):
    """No run with that id in the store."""


async def _count(store: SqliteStore, run_id: str) -> int:
    rows = await store.query("SELECT count(*) FROM executions WHERE run_id = ?", (run_id,))
    return int(rows[0][0])


async def _known_runs(store: SqliteStore) -> list[str]:
    rows = await store.query("SELECT run_id FROM runs ORDER BY first_seq DESC LIMIT 5")
    return [str(r[0]) for r in rows]


async def load_with_progress(data_dir: Path, run_id: str, console: Console) -> RunAnalysis:
    """The run's analysis, showing a progress bar while its fills load."""
    async with await open_store(data_dir, "fsync", projectors=all_projectors()) as store:
        run = await load_run_row(store, run_id)
        if run is None:
            recent = await _known_runs(store)
            listed = ", ".join(recent) if recent else "none yet"
            raise UnknownRunError(
                f"no run {run_id!r} in {data_dir}. Recent runs: {listed}. List them with "
                "`GET /api/runs` (API key or `tradewire token USER`), or check --data-dir."
            )
        total = await _count(store, run_id)
        fills: list[Fill] = []
        with _progress(console) as progress:
            task = progress.add_task("loading fills", total=total)
            read = 0
            while read < total:
                page, rows = await load_fill_page(store, run_id, offset=read, limit=_PAGE)
                if not rows:
                    break
                fills += page
                read += rows
                progress.update(task, completed=read)
            progress.update(task, description="rebuilding trades")
            return await analyse_fills(store, run, fills)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def render_equity_png(analysis: RunAnalysis) -> bytes:
    """Equity (top) and drawdown (bottom) as PNG bytes (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    series = drawdown_series(analysis.metrics)
    times = [t for t, _, _ in series]
    figure = Figure(figsize=(10, 6), dpi=100)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.step(times, [float(e) for _, e, _ in series], where="post", color="#1f77b4")
    top.set_title(f"run {analysis.run.run_id}: equity")
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    bottom.fill_between(times, [-float(d) for _, _, d in series], step="post", color="#d62728")
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _metric_rows(analysis: RunAnalysis) -> list[tuple[str, str]]:
    doc = metrics_document(analysis)
    return [(k, "-" if v is None else str(v)) for k, v in doc.items() if k != "run_id"]


_TRADE_COLUMNS: Final = (
    "symbol", "side", "entry_time", "exit_time", "entry_price", "exit_price",
    "total_quantity", "net_pnl", "commission", "mae", "mfe",
)  # fmt: skip


def render_html(analysis: RunAnalysis, png: bytes) -> str:
    """A self-contained HTML report (chart embedded as a data URI)."""
    esc = html.escape
    metrics = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _metric_rows(analysis)
    )
    trades: list[dict[str, Any]] = trades_document(analysis)["trades"]
    head = "".join(f"<th>{c}</th>" for c in _TRADE_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{esc(str(t[c] if t[c] is not None else '-'))}</td>" for c in _TRADE_COLUMNS)
        + "</tr>"
        for t in trades
    )
    image = base64.b64encode(png).decode("ascii")
    run_id = esc(analysis.run.run_id)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>tradewire report {run_id}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
        f"<h1>Run {run_id}</h1><img alt='equity and drawdown' src='data:image/png;base64,{image}'>"
        f"<h2>Metrics</h2><table>{metrics}</table>"
        f"<h2>Trades ({len(trades)})</h2><table><tr>{head}</tr>{body}</table></body></html>"
    )


def _table(analysis: RunAnalysis) -> Table:
    table = Table(title=f"run {analysis.run.run_id}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in _metric_rows(analysis):
        table.add_row(name, value)
    return table


@click.command("report")
@click.argument("run_id")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory for equity.png and report.html (default ./tradewire-report-RUN_ID).",
)
@common_options
@reports_errors
def report(config_file: Path | None, data_dir: Path | None, run_id: str, out: Path | None) -> None:
    """Print RUN_ID's metrics and write its equity chart (PNG) and an HTML report."""
    settings = settings_from(config_file, data_dir=data_dir)
    console = Console()
    analysis = asyncio.run(load_with_progress(settings.data_dir, run_id, console))
    console.print(_table(analysis))
    target = out or Path(f"tradewire-report-{run_id}")
    target.mkdir(parents=True, exist_ok=True)
    png = render_equity_png(analysis)
    (target / "equity.png").write_bytes(png)
    (target / "report.html").write_text(render_html(analysis, png), encoding="utf-8")
    console.print(f"wrote {target / 'equity.png'} and {target / 'report.html'}")
