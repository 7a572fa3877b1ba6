"""Reference answer for the sliding variant (1-minute windows every 10 s), plain Python.

usage: sliding_ref.py IN OUT
"""

from __future__ import annotations

import json
import sys

LENGTH_MS, EVERY_MS = 60_000, 10_000


def main() -> None:
    acc: dict[tuple[int, str, str], list[float]] = {}
    with open(sys.argv[1]) as f:
        for line in f:
            e = json.loads(line)
            ts, lat = e["ts"], e["latency_ms"]
            last = ts - ts % EVERY_MS
            # every window [s, s + LENGTH) with s aligned to EVERY and s <= ts < s + LENGTH
            for start in range(last, ts - LENGTH_MS, -EVERY_MS):
                k = (start, e["service"], e["level"])
                a = acc.get(k)
                if a is None:
                    acc[k] = [1, lat, lat]
                else:
                    a[0] += 1
                    a[1] += lat
                    a[2] = max(a[2], lat)
    with open(sys.argv[2], "w") as f:
        for (start, svc, lvl), (c, s, m) in acc.items():
            f.write(json.dumps({"window_start_ms": start, "service": svc, "level": lvl,
                                "count": int(c), "sum": s, "max": m}) + "\n")


if __name__ == "__main__":
    main()
