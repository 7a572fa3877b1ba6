"""Bytewax keys that land on a chosen worker, for runs that route a keyed step per worker.

bytewax sends a stateful item to worker ``h % workers`` where ``h`` is Rust's ``DefaultHasher``
(SipHash-1-3 with zero keys) of the key string as Rust hashes a ``str`` (its bytes, then
``0xFF``). Knowing that, a run without recovery can name one key per worker and route every
key group's runs through the key of the worker that should hold the group: one item per worker
and batch instead of one per key group. A wrong guess (another bytewax build hashing
differently) would only unbalance the workers, never change results: a slot's logic keeps each
of its key groups apart, wherever it runs. ``tests/flowlib/engine/test_slots.py`` checks the
guess against the installed bytewax.
"""

from __future__ import annotations

__all__ = ["slot_keys", "worker_of"]

_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _siphash13(data: bytes) -> int:
    """SipHash-1-3 of ``data`` with the key (0, 0): Rust's ``DefaultHasher::new()``."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    n = len(data)
    whole = n - n % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        sip_round()
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker (of ``workers``) that bytewax 0.21 routes stateful items keyed ``key`` to."""
    return _siphash13(key.encode() + b"\xff") % workers


def slot_keys(workers: int) -> list[str]:
    """One bytewax key per worker: ``slot_keys(w)[i]`` is routed to worker ``i``.

    >>> keys = slot_keys(3)
    >>> [worker_of(k, 3) for k in keys]
    [0, 1, 2]
    """
    keys: list[str] = []
    for worker in range(workers):
        n = 0
        while worker_of(f"w{worker}.{n}", workers) != worker:
            n += 1
        keys.append(f"w{worker}.{n}")
    return keys
