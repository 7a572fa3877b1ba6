"""Types inferred through a whole chain, asserted by mypy (``assert_type``) and run by pytest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import assert_type

from typing_extensions import override

from flowlib import (
    Codec,
    Context,
    Flow,
    JsonLinesSink,
    JsonLinesSource,
    KeyedStream,
    ListSink,
    ListSource,
    ProcessedStream,
    Processor,
    Stream,
    TextLines,
    codec_for,
)
from flowlib.time import Late
from operators.aggregate import Count, Keyed


@dataclass(frozen=True)
class LogLine:
    ts: datetime
    level: str
    message: str


@dataclass(frozen=True)
class LevelCount:
    level: str
    count: int


class CountLevels(Processor[LogLine, LevelCount, str, int]):
    @override
    def process(self, ctx: Context[str, int, LevelCount], event: LogLine) -> None:
        n = ctx.state.get(0) + 1
        assert_type(n, int)
        ctx.state.set(n)
        ctx.emit(LevelCount(ctx.key, n))


def parse(line: str) -> LogLine:
    ts, level, message = line.split(" ", 2)
    return LogLine(datetime.fromisoformat(ts), level, message)


def test_chain_types_are_inferred() -> None:
    flow = Flow("typed")
    lines = flow.source(TextLines("x.log", parse=parse))
    assert_type(lines, Stream[LogLine])
    levels = lines.map(lambda e: e.level)
    assert_type(levels, Stream[str])
    words = lines.flat_map(lambda e: e.message.split())
    assert_type(words, Stream[str])
    errors = lines.filter(lambda e: e.level == "error")
    assert_type(errors, Stream[LogLine])
    keyed = errors.key_by(lambda e: e.level)
    assert_type(keyed, KeyedStream[str, LogLine])
    counts = keyed.process(CountLevels())
    assert_type(counts, ProcessedStream[LevelCount, str, LogLine])
    assert_type(counts.late, Stream[Late[str, LogLine]])
    totals = lines.key_by(lambda e: (e.level, e.ts.hour)).process(Count())
    assert_type(totals, ProcessedStream[Keyed[tuple[str, int], int], tuple[str, int], LogLine])
    timed = lines.with_event_time("ts")
    assert_type(timed, Stream[LogLine])
    counts.sink(JsonLinesSink("out.jsonl", LevelCount))
    assert isinstance(counts, Stream)
    assert counts.item_type is LevelCount  # the runtime type agrees with the static one


def test_sources_sinks_and_codecs_carry_their_type() -> None:
    assert_type(JsonLinesSource("in.jsonl", LogLine), JsonLinesSource[LogLine])
    assert_type(ListSource([1, 2], int), ListSource[int])
    assert_type(ListSink(LevelCount), ListSink[LevelCount])
    codec = codec_for(LogLine)
    assert_type(codec, Codec[LogLine])
    assert_type(codec.decode(b'{"ts": 0, "level": "x", "message": "m"}'), LogLine)
    assert codec.annotation is LogLine
