"""The one place pyarrow is imported: it ships no type information, so mypy sees ``Any``."""

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

__all__ = ["pa", "pc"]
