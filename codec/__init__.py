"""A learned image codec: compress(image) -> bytes, decompress(bytes) -> image.

The API is imported on first use, so that `codec --help` and the errors need no torch.
"""

import importlib.metadata

from codec.errors import BitstreamError, CodecError, ConversionWarning, ImageError, ModelError, TargetError

try:
    __version__ = importlib.metadata.version("lic-codec")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "compress", "decompress", "compress_to_target", "CodecError", "BitstreamError", "ImageError", "ModelError", "TargetError",
           "ConversionWarning"]


def __getattr__(name: str):
    if name in ("compress", "decompress", "compress_to_target"):
        from codec import api

        return getattr(api, name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
