"""Stable assignment of typed keys to key groups.

The group of a key is ``xxh3_64(key_bytes(key)) % max_key_groups``: the same in every process and
every run (Python's ``hash()`` is salted per process, so it would break multi-process routing and
resume). The group count is fixed for the life of a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xxhash

from flowlib.codecs import Codec

__all__ = ["GroupOf", "group_of"]

GroupOf = Callable[[Any], str]

_CACHE_LIMIT = 1 << 20
"""Keys whose group is memoised; most streams have far fewer distinct keys than this."""


def group_of(key_codec: Codec[Any], max_key_groups: int) -> GroupOf:
    """A function from a key to its group id (a ``str``, as bytewax routes by ``str``)."""
    names = [str(i) for i in range(max_key_groups)]
    key_bytes = key_codec.key_bytes
    digest = xxhash.xxh3_64_intdigest
    cache: dict[Any, str] = {}
    cached = cache.get

    def compute(key: Any) -> str:
        return names[digest(key_bytes(key)) % max_key_groups]

    def lookup(key: Any) -> str:
        try:
            # Group names are never empty, so a miss is the only falsy result.
            g = cached(key)
        except TypeError:  # unhashable key (a list, a dict): no memo, same result
            return compute(key)
        if not g:
            g = compute(key)
            if len(cache) < _CACHE_LIMIT:
                cache[key] = g
        return g

    return lookup
