"""The one place pyarrow is imported: it ships no type information, so mypy sees ``Any``."""

from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

__all__ = ["compute", "pa"]


def compute() -> Any:
    """``pyarrow.compute``, imported on first use: it builds ~300 function wrappers at import
    (~80 ms), and a checkpoint of most state types never needs it."""
    import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

    return pc
