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
