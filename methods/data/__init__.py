"""Dataset readers (one module per on-disk format), the synthetic phantom, the prepared cache,
splits and loaders."""

from methods.data.types import Case, DatasetFormatError

__all__ = ["Case", "DatasetFormatError"]
