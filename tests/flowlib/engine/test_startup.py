"""Start-up cost: a run without recovery or metrics never imports pyarrow or prometheus_client,
nor the Kafka client or RocksDB when it uses neither.

pyarrow (with numpy) is most of flowlib's import time (~0.2 s of a ~0.35 s start); only
checkpoints need it. The Kafka connectors (confluent_kafka, TLS) and the disk backend
(rocksdict) cost ~25 ms more. This keeps a module-level import from creeping back in.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    from flowlib import Context, Flow, Processor
    from flowlib.connectors.memory import ListSink, ListSource
    from flowlib.engine import run
    from operators.aggregations import Count, Sum
    from operators.windows import TumblingWindows
    from datetime import timedelta
    import state_backends

    class Total(Processor[int, int, str, int]):
        def process(self, ctx: Context[str, int, int], event: int) -> None:
            ctx.state.set(ctx.state.get(0) + event)

        def on_eof(self, ctx: Context[str, int, int]) -> None:
            ctx.emit(ctx.state.get(0))

    flow = Flow("startup")
    out = ListSink(int)
    numbers = flow.source(ListSource(list(range(100)), int), name="numbers")
    numbers.key_by(lambda n: str(n % 3), key_type=str).process(Total(), name="total").sink(out)
    run(flow)
    assert sorted(out.items) == [1617, 1650, 1683], out.items
    print(sorted(m for m in ("pyarrow", "pyarrow.compute", "numpy", "prometheus_client",
                             "confluent_kafka",
                             "rocksdict", "flowlib.connectors.kafka", "state_backends.disk")
                 if m in sys.modules))
    """
)


def test_a_plain_run_imports_no_pyarrow_prometheus_kafka_or_rocksdb(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False,
        cwd=tmp_path,  # the run's default dead-letter file goes there
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_the_same_run_imports_pyarrow_once_it_checkpoints(tmp_path: Path) -> None:
    # The check above can fail: with a recovery directory the same flow must load pyarrow.
    script = SCRIPT.replace("run(flow)", f"run(flow, recovery_dir={str(tmp_path / 'rec')!r})")
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.strip().splitlines()[-1]
    assert "'pyarrow'" in loaded
    # pyarrow.compute builds ~300 wrappers at import (~80 ms): checkpoints of plain state
    # types never need it (schema evolution and timestamp columns load it when they do).
    assert "pyarrow.compute" not in loaded


def test_the_lazy_names_still_import() -> None:
    # What the lazy imports hand out is the real thing, and a wrong name still fails.
    import flowlib.connectors as connectors
    import state_backends
    from flowlib.connectors.kafka import KafkaSource
    from state_backends.disk import DiskBackend

    assert connectors.KafkaSource is KafkaSource
    assert state_backends.DiskBackend is DiskBackend
    assert (state_backends.MemoryBackend, DiskBackend) == state_backends.ALL_BACKENDS
    with pytest.raises(AttributeError, match="has no attribute 'KafkaNope'"):
        _ = connectors.KafkaNope
