"""run_flow: test inputs, collected sinks, two workers, crash and resume."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flowlib import DeadLetter, Flow, ListSink, ListSource, TextLines
from flowlib.engine import run
from flowlib.testing import FlowRunner, SimulatedCrash, TestSource, assert_outputs, run_flow
from flowlib.time import Late
from operators.aggregate import Count, Keyed
from tests.flowlib.testing.processors import Reading, Window, WindowSum, at

WORDS = ["apple", "bob", "avocado", "cherry", "banana", "apple", "", "blueberry", "cat"]


def initial(word: str) -> str:
    return word[0]  # IndexError on "": a dead letter


class Words:
    """A flow: words -> initials -> count per initial; also the words' lengths."""

    def __init__(self) -> None:
        self.flow = Flow("words", max_key_groups=4)
        self.source = TestSource(str)
        self.counts = ListSink[Keyed[str, int]]()
        self.lengths = ListSink(int)
        words = self.flow.source(self.source, name="words")
        initials = words.map(initial, name="initial")
        initials.key_by(lambda c: c, key_type=str).process(Count(), name="count").sink(
            self.counts, name="counts"
        )
        words.map(len, name="length").sink(self.lengths, name="lengths")


def expected_counts() -> list[Keyed[str, int]]:
    return [Keyed("a", 3), Keyed("b", 3), Keyed("c", 2)]


def test_inputs_replace_sources_and_every_sink_is_collected() -> None:
    w = Words()
    result = run_flow(w.flow, {w.source: WORDS})
    assert_outputs(result.outputs(w.counts), expected_counts(), ordered=False)
    assert result.outputs(w.lengths) == [len(x) for x in WORDS]
    assert result.outputs("lengths") == result.outputs(w.lengths)
    assert result.sinks == ["counts", "lengths"]
    assert [(d.step, d.error_type, d.record) for d in result.dead_letters] == [
        ("initial", "IndexError", "")
    ]
    assert result.report.step("count").records_in == len(WORDS) - 1
    assert not result.crashed
    # the flow itself is untouched: its own sinks saw nothing
    assert w.counts.items == [] and w.lengths.items == [] and w.flow.dead_letters is None


def test_sources_are_named_by_object_stream_or_step_id() -> None:
    flow = Flow("ids")
    src = TestSource(int, [1, 2])
    out = ListSink(int)
    stream = flow.source(src, name="numbers")
    stream.map(lambda x: x + 1).sink(out)
    assert run_flow(flow).outputs(out) == [2, 3]  # a TestSource's own items
    for key in (src, stream, "numbers"):
        assert run_flow(flow, {key: [10]}).outputs(out) == [11]


def test_wrong_inputs_are_refused_with_a_message() -> None:
    w = Words()
    with pytest.raises(KeyError, match=r"not a source of this flow \(its sources: 'words'\)"):
        run_flow(w.flow, {"nope": []})
    with pytest.raises(TypeError, match=r"source 'words' produces str, but its test input #1"):
        run_flow(w.flow, {w.source: ["a", 1]})
    with pytest.raises(ValueError, match="crash_after=10 but the flow's sources hold only 2"):
        run_flow(w.flow, {w.source: ["a", "b"]}, crash_after=10)
    with pytest.raises(KeyError, match="not a sink of the flow"):
        run_flow(w.flow, {w.source: []}).outputs(ListSink(int))
    with pytest.raises(KeyError, match="no sink step 'x'"):
        run_flow(w.flow, {w.source: []}).outputs("x")


def test_two_workers_give_the_same_outputs() -> None:
    w = Words()
    one = run_flow(w.flow, {w.source: WORDS})
    two = run_flow(w.flow, {w.source: WORDS}, workers=2, batch_size=2)
    assert_outputs(two.outputs(w.counts), one.outputs(w.counts), ordered=False)
    assert sorted(two.outputs(w.lengths)) == sorted(one.outputs(w.lengths))


@pytest.mark.parametrize(("crash_after", "workers"), [(0, 1), (4, 1), (9, 1), (5, 2)])
def test_crash_and_resume_equals_an_uninterrupted_run(
    crash_after: int, workers: int, tmp_path: Path
) -> None:
    w = Words()
    plain = run_flow(w.flow, {w.source: WORDS})
    resumed = run_flow(
        w.flow, {w.source: WORDS}, crash_after=crash_after, workers=workers,
        recovery_dir=tmp_path / "rec",
    )
    assert resumed.crashed
    assert_outputs(resumed.outputs(w.counts), plain.outputs(w.counts), ordered=False)
    assert sorted(resumed.outputs(w.lengths)) == sorted(plain.outputs(w.lengths))
    assert [d.record for d in resumed.dead_letters] == [""]
    # the second run read only what the checkpoint had not covered
    assert resumed.report.step("words").records_in <= len(WORDS)
    assert (tmp_path / "rec" / "flowlib-manifest.json").exists()


def test_a_crash_resumes_from_a_checkpoint_not_from_scratch() -> None:
    w = Words()
    resumed = run_flow(w.flow, {w.source: WORDS}, crash_after=6)
    assert resumed.report.step("words").records_in < len(WORDS)


def test_the_crash_is_a_dedicated_exception_of_the_first_run_only() -> None:
    src = TestSource(int, range(5))
    flow = Flow("crash")
    flow.source(src).sink(ListSink(int))
    plan_flow = run_flow(flow, crash_after=2)
    assert plan_flow.crashed
    assert issubclass(SimulatedCrash, Exception) and not issubclass(SimulatedCrash, AssertionError)


def test_late_outputs_and_event_time_run_as_in_the_engine() -> None:
    flow = Flow("timed", max_key_groups=1)
    src = TestSource(Reading)
    stream = flow.source(src, name="readings").with_event_time(
        "ts", max_out_of_orderness=timedelta(seconds=2)
    )
    windows = stream.key_by(lambda r: r.sensor, key_type=str).process(WindowSum())
    out, late = ListSink(Window), ListSink[Late[str, Reading]]()
    windows.sink(out)
    windows.late.sink(late)
    readings = [Reading("a", at(t)) for t in (1, 14, 3, 13)]
    result = run_flow(flow, {src: readings})
    assert result.outputs(out) == [Window("a", at(10), 1), Window("a", at(20), 2)]
    assert [x.event for x in result.outputs(late)] == [Reading("a", at(3))]


def test_sources_not_listed_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("kiwi\nlime\n")
    flow = Flow("files")
    out = ListSink(str)
    fed = TestSource(str)
    flow.merge(flow.source(TextLines(path, parse=str.upper)), flow.source(fed)).sink(out)
    result = run_flow(flow, {fed: ["fig"]})
    assert sorted(result.outputs(out)) == ["KIWI", "LIME", "fig"]
    with pytest.raises(ValueError, match="crash_after must be at least 0"):
        run_flow(flow, crash_after=-1)


def test_results_match_a_plain_engine_run() -> None:
    flow = Flow("plain", dead_letters=ListSink(DeadLetter))
    src = ListSource(WORDS, str)
    out = ListSink(int)
    flow.source(src).map(len).sink(out)
    run(flow)
    assert run_flow(flow, {src: WORDS}).outputs(out) == out.items


def test_flow_runner_keeps_recovery_dirs_under_its_base(tmp_path: Path) -> None:
    w = Words()
    runner = FlowRunner(tmp_path)
    result = runner(w.flow, {w.source: WORDS}, crash_after=3)
    assert result.crashed and (tmp_path / "recovery-1").is_dir()
    runner(w.flow, {w.source: WORDS}, crash_after=3)
    assert (tmp_path / "recovery-2").is_dir()
