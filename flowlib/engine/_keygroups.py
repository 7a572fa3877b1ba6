"""Stable assignment of typed keys to key groups.

The group of a key is ``xxh3_64(key_bytes(key)) % max_key_groups``: the same in every process and
every run (Python's ``hash()`` is salted per process, so it would break multi-process routing and
resume). The group count is fixed for the life of a checkpoint.
"""

from __future__ import annotations

from typing import Any

import xxhash

from flowlib.codecs import Codec

__all__ = ["GroupOf", "group_of"]


_CACHE_LIMIT = 1 << 20
"""Keys whose group is memoised; most streams have far fewer distinct keys than this."""


class GroupOf:
    """Maps a key to its group id (a ``str``, as bytewax routes by ``str``), memoised.

    ``cached`` is the memo's own ``get``: callers on the hot path try it first (a C call) and
    call the object only on a miss. Group names are never empty, so a miss is the only falsy
    result.
    """

    __slots__ = ("_cache", "_digest", "_groups", "_key_bytes", "_names", "cached")

    def __init__(self, key_codec: Codec[Any], max_key_groups: int) -> None:
        self._names = [str(i) for i in range(max_key_groups)]
        self._groups = max_key_groups
        self._key_bytes = key_codec.key_bytes
        self._digest = xxhash.xxh3_64_intdigest
        self._cache: dict[Any, str] = {}
        self.cached = self._cache.get

    def compute(self, key: Any) -> str:
        if self._groups == 1:  # no need to encode the key
            return "0"
        return self._names[self._digest(self._key_bytes(key)) % self._groups]

    def __call__(self, key: Any) -> str:
        try:
            g = self.cached(key)
        except TypeError:  # unhashable key (a list, a dict): no memo, same result
            return self.compute(key)
        if not g:
            g = self.compute(key)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = g
        return g


def group_of(key_codec: Codec[Any], max_key_groups: int) -> GroupOf:
    """The group function of keys encoded by ``key_codec``, over ``max_key_groups`` groups."""
    return GroupOf(key_codec, max_key_groups)
