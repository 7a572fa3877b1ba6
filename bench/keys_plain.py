#!/usr/bin/env python3
"""keys benchmark, plain single-process loop with orjson: the per-event limit for Python code.

usage: keys_plain.py IN OUT
"""

from __future__ import annotations

import sys

import orjson


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    sums: dict[str, float] = {}
    loads = orjson.loads
    get = sums.get
    with open(src, "rb") as f:
        for line in f:
            e = loads(line)
            k = e["k"]
            sums[k] = get(k, 0.0) + e["v"]
    with open(dst, "wb") as f:
        f.write(b"".join(orjson.dumps({"k": k, "sum": s}) + b"\n" for k, s in sums.items()))


if __name__ == "__main__":
    main()
