"""The errors a user can cause. Each message is one line that names the problem."""


class CodecError(Exception):
    """Base class: the CLI prints the message and exits non-zero."""


class ImageError(CodecError):
    """An input that is not an image we can code (missing, unreadable, too large...)."""


class BitstreamError(CodecError):
    """A file that is not a valid bitstream of ours: foreign, truncated, corrupted, unsupported."""


class ModelError(CodecError):
    """An unknown model, missing weights, or weights that do not match what a file was coded with."""


class TargetError(CodecError):
    """A rate or quality target that no quality meets; `closest` holds the nearest result (a
    codec.api.Targeted), which compress_to_target(..., closest=True) returns instead."""

    def __init__(self, message: str, closest=None):
        super().__init__(message)
        self.closest = closest


class ConversionWarning(UserWarning):
    """The input was changed to fit the codec (mode, depth, orientation, alpha): a notice, not an error."""
