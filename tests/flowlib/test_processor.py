"""The processor context: the watermark in both forms."""

from __future__ import annotations

from datetime import datetime, timedelta

from flowlib.processor import Context
from flowlib.time import END_OF_TIME, EPOCH, from_micros, to_micros


def _marks(ctx: Context[str, int, int]) -> tuple[datetime | None, int | None]:
    return ctx.watermark, ctx.watermark_us


def test_setting_the_watermark_sets_its_microseconds() -> None:
    ctx: Context[str, int, int] = Context("step", None)
    assert _marks(ctx) == (None, None)
    wm = EPOCH + timedelta(seconds=90, microseconds=7)
    ctx.watermark = wm
    assert _marks(ctx) == (wm, 90_000_007)
    ctx.watermark = END_OF_TIME
    assert _marks(ctx) == (END_OF_TIME, to_micros(END_OF_TIME))
    ctx.watermark = None
    assert _marks(ctx) == (None, None)


def test_a_watermark_set_in_microseconds_reads_as_the_same_datetime() -> None:
    ctx: Context[str, int, int] = Context("step", None)
    ctx._set_watermark(None, 1_500_000)  # the engine's way: the datetime when first read
    assert ctx.watermark_us == 1_500_000
    assert ctx.watermark == from_micros(1_500_000) == EPOCH + timedelta(seconds=1.5)
    assert ctx.watermark is ctx.watermark  # converted once
    given = EPOCH + timedelta(seconds=2)
    ctx._set_watermark(given, 2_000_000)
    assert ctx.watermark is given
