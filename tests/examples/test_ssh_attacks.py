"""examples/ssh_attacks.py on the real OpenSSH sample, checked against LogHub's labels."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from tests.examples.cli_helpers import ROOT, run_cli, structured_rows

SCRIPT = ROOT / "examples" / "ssh_attacks.py"
FAILED = {"E8", "E9", "E10"}


def test_attackers_and_template_counts_match_loghub_labels(tmp_path: Path) -> None:
    run_cli("run", SCRIPT, "--", "--out", tmp_path)
    rows = structured_rows("OpenSSH")

    expected_templates = Counter(r["EventId"] for r in rows)
    got_templates = {
        d["template_id"]: d["count"]
        for d in map(json.loads, (tmp_path / "counts_by_template.jsonl").read_text().splitlines())
    }
    assert got_templates == dict(expected_templates)

    # Independent answer: LogHub's EventId says which lines are failed logins.
    attempts: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    users: dict[str, set[str]] = {}
    for r in rows:
        if r["EventId"] in FAILED:
            m = re.search(r"for (invalid user )?(.*?) from (\S+) port", r["Content"])
            assert m is not None
            attempts[m.group(3)] += 1
            invalid[m.group(3)] += bool(m.group(1))
            users.setdefault(m.group(3), set()).add(m.group(2))
    reports = [
        json.loads(line) for line in (tmp_path / "attackers.jsonl").read_text().splitlines()
    ]
    assert {r["remote"]: r["attempts"] for r in reports} == dict(attempts)
    assert {r["remote"]: r["invalid_user_attempts"] for r in reports} == {
        k: invalid[k] for k in attempts
    }
    assert {r["remote"]: r["distinct_users"] for r in reports} == {
        k: len(v) for k, v in users.items()
    }
    assert all(r["first_seen"] <= r["last_seen"] for r in reports)
    assert (tmp_path / "dead_letters.jsonl").read_text() == ""
