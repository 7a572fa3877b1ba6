"""CrashAfter: the wrapped function runs normally until the crash call ends the process."""

from __future__ import annotations

import subprocess
import sys

from flowlib.testing import CrashAfter

CHILD = """
import sys
from flowlib.testing import CrashAfter
echo = CrashAfter(lambda x: x, after=3)
for i in range(5):
    print(echo(i), flush=True)
print("not reached", flush=True)
"""


def test_the_crash_call_ends_the_process_as_kill_9_and_runs_no_cleanup() -> None:
    # an atexit handler would print: the crash must skip it, as kill -9 does
    child = "import atexit; atexit.register(print, 'cleanup')\n" + CHILD
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 137
    assert proc.stdout.split() == ["0", "1"]


def test_without_after_it_only_counts_calls() -> None:
    square: CrashAfter[int, int] = CrashAfter(lambda x: x * x, after=None, pause_every=2)
    assert [square(i) for i in range(4)] == [0, 1, 4, 9]
    assert square.calls == 4
