"""The ``flowlib`` command: errors, exit codes, user tracebacks, clusters with -a/-i."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowlib.cli import main

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
    explode = next(x for x in proc.stderr.splitlines() if x.startswith("explode "))
    assert explode.split()[-4:] == ["6", "5", "1", "0"]  # in, out, dead letters, late


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
            cwd=tmp_path, stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert sorted((tmp_path / "out.jsonl").read_text().split()) == ["0", "1", "2", "4", "5"]
