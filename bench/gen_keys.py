#!/usr/bin/env python3
"""Generate the ``keys`` benchmark input: N JSON lines ``{"k":"key<i % KEYS>","v":<float>}``.

usage: gen_keys.py OUT [N] [KEYS]   (N defaults to 1,000,000, KEYS to 100,000)

Deterministic (``random.Random(1)``); ``v`` is ``randrange(100000) / 1000``, a float in [0, 100)
with 3 decimals, like the log_agg workload's latency.
"""

from __future__ import annotations

import json
import random
import sys


def generate(out: str, n: int = 1_000_000, keys: int = 100_000) -> None:
    """Write ``n`` events cycling over ``keys`` distinct keys to ``out``."""
    rng = random.Random(1)
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with open(out, "w") as f:
        for i in range(n):
            f.write(dumps({"k": f"key{i % keys}", "v": rng.randrange(100_000) / 1000}))
            f.write("\n")


def main() -> None:
    if not 2 <= len(sys.argv) <= 4:
        sys.exit(__doc__)
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    keys = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    generate(sys.argv[1], n, keys)


if __name__ == "__main__":
    main()
