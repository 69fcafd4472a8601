"""Run every benchmark and rewrite docs/benchmarks.md.

Usage: ``python -m bench [--quick] [--only TOPIC ...] [--no-write]``.

A full run rewrites the whole file; ``--only`` replaces just the sections
it measured (matched by their ``## `` heading) and appends new ones, noting
the date of that partial run under each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import pkgutil
import sys
import traceback
from pathlib import Path

from rich.console import Console

from bench._harness import Section, machine

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Measured by `make bench` (`python -m bench`), which rewrites this file.
Every table compares contenders measured **in the same run on the same
machine**; only the ratios are meant to be compared across runs, because this
machine is shared and noisy. Reproduce one topic with
`make bench BENCH_ARGS="--only store"`, or a short smoke run with
`BENCH_ARGS=--quick`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", nargs="*", default=None, help="topics to run (module suffix)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    console = Console(stderr=True)
    topics = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    if args.only:
        topics = [t for t in topics if t in args.only]
    sections: list[Section] = []
    failed: list[str] = []
    for topic in topics:
        console.rule(f"bench: {topic}")
        module = importlib.import_module(f"bench.bench_{topic}")
        try:
            result = module.run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(topic)
            continue
        for section in result if isinstance(result, list) else [result]:
            sections.append(section)
            console.print(section.to_markdown())
    if not args.no_write and not args.quick and sections:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        if args.only and DOC.exists():
            DOC.write_text(merge_sections(DOC.read_text(), sections, stamp))
        elif not args.only:
            body = [HEADER, f"Last full run: {stamp}, {machine()}.", ""]
            body += [s.to_markdown() for s in sections]
            DOC.write_text("\n".join(body))
        console.print(f"wrote {DOC}")
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}")
        return 1
    return 0


def merge_sections(doc: str, sections: list[Section], stamp: str) -> str:
    """``doc`` with each measured section replaced (or appended), marked with its run."""
    parts = doc.split("\n## ")
    head, old = parts[0], {p.split("\n", 1)[0]: "## " + p for p in parts[1:]}
    order = list(old)
    for section in sections:
        text = section.to_markdown().rstrip("\n")
        title = text.removeprefix("## ").split("\n", 1)[0]
        old[title] = f"{text}\n\n_Measured in a partial run (`--only`): {stamp}, {machine()}._\n"
        if title not in order:
            order.append(title)
    return "\n".join([head.rstrip("\n") + "\n", *(old[t].rstrip("\n") + "\n" for t in order)])


if __name__ == "__main__":
    sys.exit(main())
