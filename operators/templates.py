"""Match log messages against LogHub-style event templates.

A template is literal text in which ``<*>`` stands for any run of characters
(possibly empty), e.g. ``Invalid user <*> from <*>``. :class:`TemplateMatcher`
maps a message to the event id of the template that matches all of it.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable

__all__ = ["WILDCARD", "TemplateMatcher"]

WILDCARD = "<*>"


def _pattern(template: str) -> str:
    """Regex source that matches exactly the messages `template` describes."""
    segments = template.split(WILDCARD)
    if len(segments) == 1:
        return re.escape(template)
    head, *middle, tail = segments
    # For a pattern whose only wildcard is "match anything", placing each inner
    # literal at its leftmost possible position never loses a match (a later
    # position only leaves less text for the rest). Committing to that position
    # with an atomic group keeps the cost near-linear, where plain lazy
    # wildcards backtrack combinatorially on long near-miss lines (ReDoS).
    inner = "".join(f"(?>.*?{re.escape(seg)})" for seg in middle if seg)
    return f"{re.escape(head)}{inner}.*{re.escape(tail)}"


def _first_token(text: str) -> str:
    return text.partition(" ")[0]


class TemplateMatcher:
    """Classify messages by the most specific LogHub template matching them.

    When several templates match, the winner has the most literal (non-``<*>``)
    characters, then the fewest wildcard runs, then comes first in the input.
    Surrounding whitespace of messages and templates is ignored, because
    LogHub derives its templates (and its ``Content`` column) from stripped
    lines.

    >>> m = TemplateMatcher([("E1", "Failed password for <*> from <*>"),
    ...                      ("E2", "Failed password for invalid user <*> from <*>")])
    >>> m.match("Failed password for invalid user bob from 10.0.0.1")
    'E2'
    >>> m.match("Failed password for root from 10.0.0.1")
    'E1'
    >>> m.match("Accepted password for root") is None
    True
    """

    __slots__ = ("_buckets", "_by_id", "_fallback", "_order")

    def __init__(self, templates: Iterable[tuple[str, str]]) -> None:
        self._by_id: dict[str, str] = {}
        entries: list[tuple[int, int, int, str, str]] = []
        for index, (event_id, template) in enumerate(templates):
            if event_id in self._by_id:
                raise ValueError(f"duplicate event id {event_id!r}")
            self._by_id[event_id] = template
            body = template.strip()
            literal_chars = len(body) - len(WILDCARD) * body.count(WILDCARD)
            # "<*><*>" constrains no more than "<*>", so count runs, not markers.
            wildcard_runs = len(re.findall(r"(?:<\*>)+", body))
            entries.append((-literal_chars, wildcard_runs, index, event_id, body))
        # Sorting once lets regex alternation order do the tie-breaking: the
        # first alternative that matches the whole message is the most specific.
        entries.sort()
        self._order: tuple[str, ...] = tuple(entry[3] for entry in entries)

        # Index by first space-delimited token: a template whose first token is
        # literal can only match messages starting with that same token, so
        # each message is tried against its own bucket plus the templates that
        # start with a wildcard, instead of against every template.
        keyed: dict[str, list[int]] = {}
        unkeyed: list[int] = []
        for rank, entry in enumerate(entries):
            token = _first_token(entry[4])
            if WILDCARD in token:
                unkeyed.append(rank)
            else:
                keyed.setdefault(token, []).append(rank)
        patterns = [_pattern(entry[4]) for entry in entries]
        self._fallback = self._compile(unkeyed, patterns)
        self._buckets = {
            token: self._compile(sorted(ranks + unkeyed), patterns)
            for token, ranks in keyed.items()
        }

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> TemplateMatcher:
        """Load a LogHub ``*_templates.csv`` (columns ``EventId,EventTemplate``)."""
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"EventId", "EventTemplate"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{os.fspath(path)}: missing column(s) {sorted(missing)}")
            return cls((row["EventId"], row["EventTemplate"]) for row in reader)

    @staticmethod
    def _compile(ranks: list[int], patterns: list[str]) -> tuple[re.Pattern[str], tuple[int, ...]]:
        # One capturing group per alternative: `lastindex` then names the
        # template that matched without trying the others one by one.
        if not ranks:
            return re.compile(r"(?!)"), ()
        source = "|".join(f"({patterns[rank]})" for rank in ranks)
        return re.compile(source, re.DOTALL), (-1, *ranks)

    def match(self, message: str) -> str | None:
        """Event id of the most specific template matching all of `message`, or None."""
        body = message.strip()
        regex, ranks = self._buckets.get(_first_token(body), self._fallback)
        found = regex.fullmatch(body)
        if found is None or found.lastindex is None:
            return None
        return self._order[ranks[found.lastindex]]

    def template_of(self, event_id: str) -> str:
        """The template registered for `event_id` (``KeyError`` if unknown)."""
        try:
            return self._by_id[event_id]
        except KeyError:
            raise KeyError(f"unknown event id {event_id!r}") from None

    @property
    def event_ids(self) -> tuple[str, ...]:
        """Event ids in input order."""
        return tuple(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)
