"""The test helpers that read a child's output while killing a process lose no complete line."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.gateway_proc import lines_until_kill

PRINTER = "import sys\nfor n in range(int(sys.argv[1])): print(f'line-{n}')"


def test_lines_until_kill_keeps_every_line_after_the_kill() -> None:
    # The victim is a separate sleeper; the printer runs on and every line it wrote is kept,
    # including those the text wrapper had buffered when the kill went out.
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as victim:
        with subprocess.Popen(
            [sys.executable, "-c", PRINTER, "50000"], stdout=subprocess.PIPE, text=True
        ) as child:
            lines = lines_until_kill(child, 10, victim.pid)
        assert victim.wait(timeout=10) < 0
    assert lines == [f"line-{n}" for n in range(50000)]


def test_lines_until_kill_drops_a_line_cut_by_the_kill() -> None:
    cut = "import sys\nsys.stdout.write('whole\\nhalf'); sys.stdout.flush()"
    with subprocess.Popen([sys.executable, "-c", cut], stdout=subprocess.PIPE, text=True) as child:
        assert lines_until_kill(child, 1, child.pid) == ["whole"]
