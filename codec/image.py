"""From an input image to the RGB tensor the model codes, and from the decoded tensor back.

The codec codes 8-bit RGB. Other inputs are converted, each with a ConversionWarning that says what
changed: grayscale is coded as RGB and decoded to grayscale; transparency is flattened onto white
(no alpha is stored); palette, CMYK and other colour modes become RGB, 1-bit images 8-bit grayscale;
16-bit samples are reduced to 8 bits; an EXIF orientation is applied so that the decoded image looks
as the input is displayed; of an animation, only the first frame is coded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from codec.bitstream import MAX_PIXELS, MAX_SIDE
from codec.errors import ConversionWarning, ImageError


def _notice(message: str) -> None:
    warnings.warn(message, ConversionWarning, stacklevel=3)


def open_image(source: str | Path | BinaryIO | Image.Image) -> Image.Image:
    """The input as an 8-bit "RGB" or "L" image, loaded, oriented and converted. A binary file (such
    as standard input, read into memory: Pillow needs to seek) is named "standard input" in messages."""
    if isinstance(source, Image.Image):
        return _normalize(source, "image")
    stream = hasattr(source, "read")
    path = "standard input" if stream else Path(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source if stream else path) as image:
                _check_size(image.size, path)
                # Pillow reads 48/64-bit PNGs as 8-bit RGB(A); only the raw mode, gone after load(), says so.
                deep = any(";16" in str(tile.args) for tile in image.tile)
                image.load()
                return _normalize(image, path, deep)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise ImageError(f"{path}: {error.strerror.lower()}")
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (or a format Pillow cannot read)")
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image too large (over {MAX_PIXELS} pixels)")
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{path}: cannot decode image ({error})")


def _check_size(size: tuple[int, int], name) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: empty image ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(f"{name}: image too large ({width}x{height}; at most {MAX_PIXELS} pixels)")


def _normalize(image: Image.Image, name, deep: bool = False) -> Image.Image:
    _check_size(image.size, name)
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        _notice(f"{name}: animated ({frames} frames): only the first frame is coded")
        image = image.copy()  # that frame alone, which a second look does not call animated
    orientation = image.getexif().get(0x0112, 1)
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
        _notice(f"{name}: rotated/flipped as its EXIF orientation ({orientation}) says")
    if image.mode in ("I;16", "I;16B", "I;16L", "I") or deep:
        _notice(f"{name}: 16-bit samples reduced to 8 bits")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        samples = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(samples / 257.0), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        raise ImageError(f"{name}: floating-point images are not supported")
    if image.mode == "P":
        _notice(f"{name}: palette image converted to RGB")
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        alpha = image.getchannel("A")
        if alpha.getextrema()[0] < 255:
            _notice(f"{name}: transparency flattened onto white (the codec stores no alpha)")
        base = "L" if image.mode in ("LA", "La") else "RGB"
        background = Image.new(base, image.size, "white")
        background.paste(image.convert(base), mask=alpha)
        image = background
    if image.mode == "1":
        _notice(f"{name}: 1-bit image converted to 8-bit grayscale")
        image = image.convert("L")
    if image.mode not in ("RGB", "L"):
        _notice(f"{name}: {image.mode} converted to RGB")
        image = image.convert("RGB")
    return image


def to_tensor(image: Image.Image, multiple: int = 1) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]; grayscale is replicated to three channels. H and W are padded
    right and bottom to multiples of `multiple` (a model's downsampling) by edge replication, in
    8 bits, before the float copy: at 4K that copy alone is 100 MB."""
    pixels = np.asarray(image.convert("RGB"))
    pixels = np.pad(pixels, ((0, -pixels.shape[0] % multiple), (0, -pixels.shape[1] % multiple), (0, 0)), mode="edge")
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_image(x: torch.Tensor, mode: str) -> Image.Image:
    """The 8-bit image of a (1, 3, H, W) tensor in [0, 1], in mode "RGB" or "L". Converted a band
    of rows at a time, so that a large image needs no second float copy."""
    height, width = x.shape[-2:]
    pixels = torch.empty(height, width, 3, dtype=torch.uint8)
    for top in range(0, height, 256):
        band = x[0, :, top : top + 256]
        pixels[top : top + 256] = band.clamp(0, 1).mul_(255).round_().permute(1, 2, 0)
    image = Image.fromarray(pixels.numpy(), "RGB")
    return image.convert("L") if mode == "L" else image
