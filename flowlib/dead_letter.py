"""Dead letters: the typed record of an input that could not be decoded or processed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["DeadLetter"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that failed, with enough context to inspect and replay it.

    >>> dl = DeadLetter.from_error("parse", ValueError("bad line"), "garbage", "app.log:3")
    >>> dl.step, dl.error_type, dl.error, dl.record, dl.origin
    ('parse', 'ValueError', 'bad line', 'garbage', 'app.log:3')
    """

    step: str
    """Id of the step that failed on the record."""
    error_type: str
    """Class name of the error, e.g. ``DecodeError``."""
    error: str
    """The error message."""
    record: str
    """The raw record as read (text lines, JSON) or the event as JSON when it was already typed."""
    origin: str | None
    """Where the record came from, e.g. ``path:line``; ``None`` when unknown."""
    time: datetime
    """Processing time (UTC) at which the record failed."""
    raw: bytes | None = None
    """The record's exact bytes when a source has them (a Kafka message's value), for replay."""

    @classmethod
    def from_error(
        cls, step: str, error: BaseException, record: object, origin: str | None = None
    ) -> DeadLetter:
        """Build a dead letter for ``record``, which failed in ``step`` with ``error``."""
        return cls(
            step=step,
            error_type=type(error).__name__,
            error=str(error),
            record=_record_text(record),
            origin=origin,
            time=datetime.now(UTC),
        )


def _record_text(record: object) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, bytes | bytearray):
        return bytes(record).decode("utf-8", errors="backslashreplace")
    import orjson  # here: most runs make no dead letter, and the import costs ~0.5 ms

    try:
        return orjson.dumps(record, default=repr, option=orjson.OPT_PASSTHROUGH_SUBCLASS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(record)
