"""Bounded retries with exponential backoff, for brokers that are unreachable or busy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from flowlib.connectors.kafka._errors import KafkaConnectorError, KafkaUnavailableError

__all__ = ["KafkaRetry", "retrying"]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class KafkaRetry:
    """How long the connectors keep trying unreachable brokers before failing the run.

    Each attempt waits up to ``timeout`` seconds for an answer; between attempts the delay
    doubles from ``first_delay`` up to ``max_delay``. Producers get the whole budget as their
    delivery timeout (``message.timeout.ms``), so a record that cannot be delivered in that time
    fails the checkpoint instead of waiting forever.

    >>> retry = KafkaRetry(attempts=4, first_delay=0.5, max_delay=1.0, timeout=2.0)
    >>> list(retry.delays()), retry.budget
    ([0.5, 1.0, 1.0], 10.5)
    """

    attempts: int = 6
    first_delay: float = 0.25
    max_delay: float = 4.0
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout <= 0 or self.first_delay < 0:
            msg = f"invalid {self!r}: attempts >= 1, timeout > 0 and delays >= 0 are required"
            raise ValueError(msg)

    def delays(self) -> Iterator[float]:
        """The pauses between consecutive attempts (one fewer than ``attempts``)."""
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay)

    @property
    def budget(self) -> float:
        """Seconds from the first attempt until the last one gives up."""
        return self.attempts * self.timeout + sum(self.delays())


def retrying(
    what: str,
    attempt: Callable[[float], R],
    retry: KafkaRetry,
    brokers: str,
    transient: Callable[[Exception], bool],
    *,
    wrap: bool = True,
) -> R:
    """``attempt(timeout)`` until it succeeds; raise :class:`KafkaUnavailableError` when the
    attempts run out. An error ``transient`` says will not go away is raised at once, as a
    :class:`KafkaConnectorError` (or as itself when not ``wrap``).

    Raised errors quote the Kafka error instead of chaining it: the engine reports the innermost
    cause of a failure, which must be the message that says what to check.
    """
    started = time.monotonic()
    delays = retry.delays()
    while True:
        try:
            return attempt(retry.timeout)
        except Exception as exc:
            if not transient(exc):
                if not wrap:
                    raise
                msg = f"Kafka at {brokers}: cannot {what}: {exc}"
                raise KafkaConnectorError(msg) from None
            delay = next(delays, None)
            if delay is None:
                msg = (
                    f"Kafka brokers {brokers} unavailable: cannot {what} after "
                    f"{retry.attempts} attempts over {time.monotonic() - started:.1f} s "
                    f"(last error: {exc}). Check that the brokers run and are reachable, "
                    "or give the connector a longer KafkaRetry"
                )
                raise KafkaUnavailableError(msg) from None
            time.sleep(delay)
