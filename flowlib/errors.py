"""Every error flowlib raises derives from :class:`FlowlibError`.

Messages name what was wrong and where (step, field path, types) and, where one exists, the fix.
"""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "EncodeError",
    "FlowBuildError",
    "FlowlibError",
    "StateSchemaError",
    "UnsupportedTypeError",
]


class FlowlibError(Exception):
    """Root of all flowlib errors."""


class UnsupportedTypeError(FlowlibError, TypeError):
    """A type annotation cannot be turned into a codec.

    ``path`` locates the offending part, e.g. ``LogEvent.tags[0]``.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DecodeError(FlowlibError, ValueError):
    """A record does not match its declared type.

    Carries the JSON path of the bad field (``$.level``), what the type expected, what the record
    held, and the raw record bytes, so a dead letter can be inspected and replayed.
    """

    def __init__(
        self, path: str, expected: str, found: str, raw: bytes, detail: str = ""
    ) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        self.raw = raw
        self.detail = detail
        msg = f"at {path}: expected {expected}, found {found}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str, str, bytes, str]]:
        return (DecodeError, (self.path, self.expected, self.found, self.raw, self.detail))


class EncodeError(FlowlibError, ValueError):
    """A value cannot be written in its declared form (JSON or Arrow).

    ``path`` locates it in the batch or value, e.g. ``$[*].ts`` for the ``ts`` column.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[type[EncodeError], tuple[str, str]]:
        return (EncodeError, (self.path, self.reason))


class FlowBuildError(FlowlibError):
    """A flow cannot be built: steps that do not fit, duplicate ids, missing parts."""


class StateSchemaError(FlowlibError):
    """Saved state cannot be restored into the state type the flow declares now."""
