"""The run report: per-step table with rates, and the summary line."""

from __future__ import annotations

from flowlib.engine._counters import Counters


def test_table_and_summary_give_rates_over_the_wall_time() -> None:
    c = Counters("f", [("src", "source"), ("m", "map"), ("out", "sink")])
    c.add("src", 1000, 990, 10)
    c.add("m", 990, 990, 0)
    c.add("out", 990, 990, 0)
    report = c.report(2.0)
    assert report.records_read == 1000
    assert report.table().splitlines() == [
        "step  kind      in  out  dead letters  late  in/s",
        "src   source  1000  990            10     0   500",
        "m     map      990  990             0     0   495",
        "out   sink     990  990             0     0   495",
    ]
    assert report.summary() == "f: done in 2.00 s, 1,000 records read (500/s)"
    assert c.report(0.0).summary() == "f: done in 0.00 s, 1,000 records read"


def test_a_launcher_shows_the_sum_of_its_processes() -> None:
    steps = [("src", "source"), ("out", "sink")]
    a, b, launcher = Counters("f", steps), Counters("f", steps), Counters("f", steps)
    a.add("src", 10, 9, 1)
    a.source_size("src", "file#1/2", (100, 400), "bytes")
    b.add("src", 5, 5, 0, 2)
    b.source_size("src", "file#2/2", (50, 400), "bytes")
    launcher.show_processes([a.live_state(), b.live_state()])
    assert launcher.report(0).step("src").records_in == 15
    assert launcher.report(0).step("src").dead_letters == 1
    assert launcher.report(0).step("src").late == 2
    assert launcher.source_sizes() == {"bytes": (150, 800)}
    b.add("src", 5, 5, 0)
    launcher.show_processes([a.live_state(), b.live_state()])  # replaces, does not add up
    assert launcher.report(0).step("src").records_in == 20
