"""The ``flowlib`` command: errors, exit codes, user tracebacks, clusters with -a/-i."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowlib.cli import main
from tests.examples.cli_helpers import step_counts

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flowlib import Flow, JsonLinesSink, ListSource

    class Boom(Exception):
        pass

    def explode(x: int) -> int:
        if x == 3:
            raise Boom("three is not allowed")
        return x

    out = Path(sys.argv[1])
    policy = sys.argv[2]
    flow = Flow("script", on_error=policy)
    nums = flow.source(ListSource(range(6), int), name="nums")
    nums.map(explode, name="explode").sink(JsonLinesSink(out / "out.jsonl", int))
    not_a_flow = 42
    """
)


def write_script(tmp_path: Path) -> Path:
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    return path


def flowlib(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowlib.cli", *args],
        cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
    )


def test_user_exception_under_fail_policy_shows_the_users_traceback(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    proc = flowlib("run", str(script), str(tmp_path), "fail", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Boom: three is not allowed" in proc.stderr
    assert 'in explode\n    raise Boom("three is not allowed")' in proc.stderr
    assert "BytewaxRuntimeError" not in proc.stderr


def test_dead_letter_policy_goes_on_and_reports(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    proc = flowlib("run", str(script), str(tmp_path), "dead_letter", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.jsonl").read_text().split() == ["0", "1", "2", "4", "5"]
    dead = [json.loads(x) for x in (tmp_path / "dead_letters.jsonl").read_text().splitlines()]
    assert [(d["step"], d["error_type"], d["record"]) for d in dead] == [("explode", "Boom", "3")]
    assert step_counts(proc.stderr, "explode") == (6, 5, 1, 0)  # in, out, dead letters, late


def test_variable_that_is_not_a_flow(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    proc = flowlib("run", f"{script}:not_a_flow", str(tmp_path), "fail", cwd=tmp_path)
    assert proc.returncode == 1
    expected = f"flowlib: error: {script}:not_a_flow is a int, not a flowlib Flow"
    assert proc.stderr.strip() == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "x.py", "-a", "127.0.0.1:1"], "-a and -i go together"),
        (["run", "x.py", "-p", "0"], "-p and -w must be at least 1"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_cluster_of_two_processes_with_addresses(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flowlib.cli", "run", str(script), "-a", addresses,
             "-i", str(i), "-q", "--", str(tmp_path), "dead_letter"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    # Process 1 waited for process 0 to listen instead of timely's refused-connection retry
    # (which prints this and sleeps a second).
    assert not any("error connecting" in out for out in outs), outs
    assert sorted((tmp_path / "out.jsonl").read_text().split()) == ["0", "1", "2", "4", "5"]


LOADS_SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import threading
    from pathlib import Path
    from flowlib import Flow, JsonLinesSink, ListSource

    out, mode = Path(sys.argv[1]), sys.argv[2]
    with (out / "loads.txt").open("a") as f:  # one line per interpreter that ran this script
        f.write(f"{os.getpid()}\\n")
    if mode == "thread":  # a thread running at fork time would make forking unsafe
        threading.Thread(target=threading.Event().wait, daemon=True).start()

    def check(x: int) -> int:
        if x == 13 and mode == "fail":
            raise ValueError("thirteen")
        return x * 2

    flow = Flow("loads", on_error="fail")
    nums = flow.source(ListSource(range(40), int, batch_size=4), name="nums")
    nums.map(check, name="check").sink(JsonLinesSink(out / "out.jsonl", int))
    """
)


@pytest.mark.parametrize(
    ("mode", "env", "loads"),
    [
        ("plain", {}, 1),  # forked: the children reuse the launcher's loaded flow
        ("plain", {"FLOWLIB_START_METHOD": "spawn"}, 3),  # launcher + 2 fresh interpreters
        ("thread", {}, 3),  # a running thread: forking is unsafe, so fresh interpreters
    ],
)
def test_local_processes_fork_when_safe(
    tmp_path: Path, mode: str, env: dict[str, str], loads: int
) -> None:
    script = tmp_path / "loads.py"
    script.write_text(LOADS_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-m", "flowlib.cli", "run", str(script), "-p", "2", "-q", "--",
         str(tmp_path), mode],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "loads.txt").read_text().split()) == loads
    got = sorted(int(x) for x in (tmp_path / "out.jsonl").read_text().split())
    assert got == [x * 2 for x in range(40)]


def test_a_failing_forked_process_fails_the_run_and_is_named(tmp_path: Path) -> None:
    script = tmp_path / "loads.py"
    script.write_text(LOADS_SCRIPT)
    proc = flowlib("run", str(script), "-p", "2", "-q", "--", str(tmp_path), "fail",
                   cwd=tmp_path)
    assert proc.returncode == 1
    # Which process is named depends on which one the launcher sees exit first: the one whose
    # worker raised, or its peer, which bytewax stops when the connection breaks.
    assert re.search(r"flowlib: error: process [01] of 2 failed \(exit 1\)", proc.stderr)
    assert len((tmp_path / "loads.txt").read_text().split()) == 1  # it was forked


RECORDS_SCRIPT = textwrap.dedent(
    """
    import sys
    from dataclasses import dataclass
    from flowlib import Flow, JsonLinesSink, JsonLinesSource

    @dataclass(frozen=True, slots=True)
    class In:
        n: int
        name: str

    @dataclass(frozen=True, slots=True)
    class Out:
        n: int
        half: float
        name: str | None

    def halve(e: In) -> Out:
        return Out(e.n, e.n / 2, e.name or None)

    flow = Flow("records")
    src = JsonLinesSource(sys.argv[1], In, splits=2)
    flow.source(src, name="in").map(halve, name="halve").sink(JsonLinesSink(sys.argv[2], Out))
    """
)


def test_records_reaching_another_processs_sink_come_back_exact(tmp_path: Path) -> None:
    # Two byte ranges, one per process; the single file sink lives in one of them, so the
    # other process's records cross to it (msgpack-encoded, see codecs/_wire).
    script = tmp_path / "records.py"
    script.write_text(RECORDS_SCRIPT)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"n": n, "name": "x" * (n % 3)}) + "\n"
                           for n in range(400)))
    proc = flowlib("run", str(script), "-p", "2", "-q", "--", str(src),
                   str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = sorted((json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()),
                  key=lambda r: r["n"])
    assert rows == [{"n": n, "half": n / 2, "name": "x" * (n % 3) or None} for n in range(400)]
    assert all(type(r["half"]) is float for r in rows)  # 2.0 stayed a float, not 2
