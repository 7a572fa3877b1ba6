# Typed stubs for the parts of bytewax's Rust extension flowlib calls; bytewax 0.21.1 ships
# them untyped, which mypy --strict rejects. The rest of bytewax is typed by its own py.typed.
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow

class RecoveryConfig:
    def __init__(self, db_dir: Path, backup_interval: timedelta | None = None) -> None: ...
    @property
    def db_dir(self) -> Path: ...
    @property
    def backup_interval(self) -> timedelta | None: ...

class AbortExecution(RuntimeError): ...
class InconsistentPartitionsError(ValueError): ...
class MissingPartitionsError(FileNotFoundError): ...
class NoPartitionsError(FileNotFoundError): ...

def cli_main(
    flow: Dataflow,
    *,
    workers_per_process: int = 1,
    process_id: int | None = None,
    addresses: list[str] | None = None,
    epoch_interval: timedelta | None = None,
    recovery_config: RecoveryConfig | None = None,
) -> None: ...
def cluster_main(
    flow: Dataflow,
    addresses: list[str],
    proc_id: int,
    *,
    epoch_interval: timedelta | None = None,
    recovery_config: RecoveryConfig | None = None,
    worker_count_per_proc: int = 1,
) -> None: ...
def run_main(
    flow: Dataflow,
    *,
    epoch_interval: timedelta | None = None,
    recovery_config: RecoveryConfig | None = None,
) -> None: ...
def init_db_dir(db_dir: Path, count: int) -> None: ...
