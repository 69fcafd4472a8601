"""Generate the committed protobuf Python code from ``wire/proto/*.proto``.

Usage: ``python -m tradewire.wire.protogen [OUT_DIR]`` (``make proto``).
Without ``OUT_DIR`` it rewrites ``src/tradewire/wire/_pb/``; a test
regenerates into a temporary directory and compares bytes, so committed code
that is stale against its ``.proto`` fails the suite.

protoc runs in-process through ``grpc_tools.protoc`` (a dev dependency,
imported only here). Its output is post-processed in one way: an absolute
``import x_pb2`` between our own generated modules becomes a relative import,
so the code works as the ``tradewire.wire._pb`` package.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from tradewire.errors import TradewireError

__all__ = ["DEFAULT_OUT_DIR", "PROTO_DIR", "ProtoGenerationError", "generate", "main"]

PROTO_DIR = Path(__file__).resolve().parent / "proto"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "_pb"

_PACKAGE_INIT = '''"""Generated protobuf code (``make proto``); do not edit.

The source of truth is ``tradewire/wire/proto/``. Use the converters in
:mod:`tradewire.wire.frames` instead of these wire types.
"""
'''
_ABSOLUTE_IMPORT = re.compile(r"^import (\w+_pb2) as ", re.MULTILINE)


class ProtoGenerationError(TradewireError):
    """protoc refused a ``.proto`` file; ``returncode`` is protoc's status."""

    def __init__(self, message: str, *, returncode: int):
        super().__init__(message)
        self.returncode = returncode


def generate(out_dir: Path = DEFAULT_OUT_DIR, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Compile every ``.proto`` in ``proto_dir`` into ``out_dir``.

    Writes ``__init__.py`` plus ``<name>_pb2.py`` and ``<name>_pb2.pyi`` per
    file, and returns the written paths (sorted).
    """
    protos = sorted(proto_dir.glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        _run_protoc(protos, proto_dir, Path(scratch))
        written = [_write(out_dir / "__init__.py", _PACKAGE_INIT)]
        for generated in sorted(Path(scratch).iterdir()):
            written.append(_write(out_dir / generated.name, _relativize(generated.read_text())))
    return sorted(written)


def _run_protoc(protos: Sequence[Path], proto_dir: Path, out: Path) -> None:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        *(str(p) for p in protos),
    ]
    returncode = int(protoc.main(args))
    if returncode != 0:
        raise ProtoGenerationError(
            f"protoc failed on {', '.join(p.name for p in protos)} (exit {returncode})",
            returncode=returncode,
        )


def _relativize(source: str) -> str:
    return _ABSOLUTE_IMPORT.sub(r"from . import \1 as ", source)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m tradewire.wire.protogen")
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    try:
        written = generate(args.out_dir)
    except ProtoGenerationError as exc:
        print(f"protogen: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
