"""Structured values of a log record, for the JSON log format."""

from __future__ import annotations

from typing import Any

__all__ = ["fields"]


def fields(event: str, **values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: the record's ``event`` kind and values, which the JSON format
    writes as keys of their own (the text format shows only the message).

    >>> fields("checkpoint", number=3)
    {'fields': {'event': 'checkpoint', 'number': 3}}
    """
    return {"fields": {"event": event, **values}}
