"""deploy/statefulset.yaml: well-formed, and its command uses only real ``flowlib run`` options."""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import yaml

from tests.examples.cli_helpers import ROOT, flowlib_command


def documents() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "statefulset.yaml").read_text()))
    return {d["kind"]: d for d in docs}


def test_statefulset_addresses_match_replicas_and_service() -> None:
    docs = documents()
    sts, svc = docs["StatefulSet"], docs["Service"]
    assert svc["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    name, replicas = sts["metadata"]["name"], sts["spec"]["replicas"]
    port = svc["spec"]["ports"][0]["port"]
    expected = [f"{name}-{i}.{svc['metadata']['name']}:{port}" for i in range(replicas)]
    assert env["FLOWLIB_ADDRESSES"].split(";") == expected
    claim = sts["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert docs["PersistentVolumeClaim"]["metadata"]["name"] == claim
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_command_uses_only_flowlib_run_options() -> None:
    container = documents()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    words = shlex.split(container["args"][0])
    assert words[:3] == ["exec", "flowlib", "run"]
    flowlib_words = words[3 : words.index("--")]
    used = {w for w in flowlib_words if w.startswith("-")}
    assert used == {"-w", "-a", "-i", "--recovery", "--snapshot-interval", "--metrics-host",
                    "--metrics-port"}
    run_help = subprocess.run([*flowlib_command(), "run", "--help"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
    for option in used:
        assert re.search(rf"(^|[\s,]){re.escape(option)}\b", run_help), option


def test_metrics_are_served_where_prometheus_is_told_to_scrape() -> None:
    pod = documents()["StatefulSet"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    words = shlex.split(container["args"][0])
    port = words[words.index("--metrics-port") + 1]
    assert words[words.index("--metrics-host") + 1] == "0.0.0.0"  # reachable from outside
    assert {"name": "metrics", "containerPort": int(port)} in container["ports"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == port
