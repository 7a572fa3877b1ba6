"""Line-oriented file sources and sinks.

Sources read a file in batches of whole lines and resume from a byte offset. The JSON-lines sink
rewrites its file from the start on a fresh run and, on a resumed run, truncates it back to the
offset recorded in the checkpoint, so a crash and resume leaves no duplicate and no missing line
(exactly-once for the file's content).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from typing_extensions import override

from flowlib._types import return_type
from flowlib.codecs import codec_for
from flowlib.connectors.base import Sink, SinkPartition, Source, SourcePartition
from flowlib.dead_letter import DeadLetter

__all__ = ["JsonLinesSink", "JsonLinesSource", "TextLines"]

T = TypeVar("T")

_BATCH_BYTES = 256 * 1024
"""Bytes read per batch: large enough that per-batch engine overhead vanishes."""


class _LinesPartition(SourcePartition[T]):
    """Reads one file as lines; ``convert`` turns a raw line (no line ending) into an event."""

    def __init__(
        self,
        path: Path,
        step: str,
        resume: tuple[int, int] | None,
        convert: Callable[[bytes], T],
        convert_many: Callable[[bytes], list[T]] | None = None,
    ) -> None:
        self._convert = convert
        self._convert_many = convert_many
        self._path = path
        self._step = step
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115  # closed in close()
        self._total = os.fstat(self._file.fileno()).st_size
        self._offset, self._line_no = resume if resume is not None else (0, 0)
        self._file.seek(self._offset)

    @override
    def read_batch(self) -> tuple[list[T], list[DeadLetter]] | None:
        lines = self._file.readlines(_BATCH_BYTES)
        if not lines:
            return None
        self._offset = self._file.tell()
        if self._convert_many is not None:
            try:
                # One C call for the whole batch; on any failure, redo it line by line to find
                # (and dead-letter) the bad records.
                events = self._convert_many(b"".join(lines))
            except Exception:
                pass
            else:
                self._line_no += len(lines)
                return events, []
        return self._convert_each(lines)

    def _convert_each(self, lines: list[bytes]) -> tuple[list[T], list[DeadLetter]]:
        events: list[T] = []
        dead: list[DeadLetter] = []
        convert = self._convert
        line_no = self._line_no
        for raw in lines:
            line_no += 1
            line = raw.rstrip(b"\r\n")
            if not line:
                continue  # blank lines carry no record
            try:
                events.append(convert(line))
            except Exception as exc:  # any parse failure is a dead letter
                dead.append(
                    DeadLetter.from_error(self._step, exc, line, f"{self._path}:{line_no}")
                )
        self._line_no = line_no
        return events, dead

    @override
    def position(self) -> tuple[int, int]:
        return (self._offset, self._line_no)

    @override
    def size_hint(self) -> tuple[int, int]:
        return (self._offset, self._total)

    @override
    def close(self) -> None:
        self._file.close()


def _paths(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> tuple[Path, ...]:
    if isinstance(path, str | os.PathLike):
        return (Path(path),)
    return tuple(Path(p) for p in path)


class JsonLinesSource(Source[T]):
    """Typed events from JSON-lines files; a line that does not decode becomes a dead letter.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Reading:
    ...     sensor: str
    ...     value: float
    >>> src = JsonLinesSource("readings.jsonl", Reading)
    >>> src.item_type is Reading, src.partitions()
    (True, ['readings.jsonl'])
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        item_type: type[T],
    ) -> None:
        self.paths = _paths(path)
        self.item_type = item_type
        self._codec = codec_for(item_type)

    @property
    @override
    def name_hint(self) -> str:
        return f"read_{self.paths[0].stem}"

    @override
    def partitions(self) -> list[str]:
        return [str(p) for p in self.paths]

    @override
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[T]:
        codec = self._codec
        return _LinesPartition(Path(partition), step, resume, codec.decode, codec.decode_lines)


class TextLines(Source[T]):
    """Events parsed from the lines of text files by a typed ``parse`` function.

    ``parse`` gets each line without its line ending; if it raises, the line becomes a dead
    letter naming the file and line number. The event type is ``parse``'s return type.

    >>> src = TextLines("app.log", parse=lambda line: line.upper())
    >>> src.partitions()
    ['app.log']
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        parse: Callable[[str], T],
    ) -> None:
        self.paths = _paths(path)
        self.parse = parse
        self.item_type = return_type(parse)

    @property
    @override
    def name_hint(self) -> str:
        return f"read_{self.paths[0].stem}"

    @override
    def partitions(self) -> list[str]:
        return [str(p) for p in self.paths]

    @override
    def open(self, partition: str, step: str, resume: Any | None) -> SourcePartition[T]:
        parse = self.parse
        return _LinesPartition(Path(partition), step, resume, lambda b: parse(b.decode("utf-8")))


class _JsonLinesSinkPartition(SinkPartition[T]):
    def __init__(self, path: Path, encode: Callable[[T], bytes], resume: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115
        # A resumed run drops what was written after the checkpoint, a fresh run starts empty.
        self._file.truncate(resume or 0)
        self._file.seek(resume or 0)
        self._encode = encode

    @override
    def write_batch(self, items: Sequence[T]) -> None:
        encode = self._encode
        self._file.write(b"".join([encode(item) + b"\n" for item in items]))

    @override
    def position(self) -> int:
        self._file.flush()
        return self._file.tell()

    @override
    def close(self) -> None:
        self._file.close()


class JsonLinesSink(Sink[T]):
    """Writes typed items as JSON lines, one file; exactly-once across crash and resume.

    >>> from flowlib.dead_letter import DeadLetter
    >>> sink = JsonLinesSink("out/dead.jsonl", DeadLetter)
    >>> sink.guarantee
    'exactly-once'
    """

    def __init__(self, path: str | os.PathLike[str], item_type: type[T]) -> None:
        self.path = Path(path)
        self.item_type = item_type
        self._codec = codec_for(item_type)

    @override
    def partitions(self) -> list[str]:
        return [str(self.path)]

    @override
    def open(self, partition: str, resume: Any | None) -> SinkPartition[T]:
        return _JsonLinesSinkPartition(Path(partition), self._codec.encode, cast(int, resume))

    @property
    @override
    def name_hint(self) -> str:
        return self.path.stem

    @override
    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")

    @property
    @override
    def guarantee(self) -> str:
        return "exactly-once"
