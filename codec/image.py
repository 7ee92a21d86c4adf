"""From an input image to the RGB tensor the model codes, and from the decoded tensor back.

The codec codes 8-bit RGB. Other inputs are converted, each with a ConversionWarning that says what
changed: grayscale is coded as RGB and decoded to grayscale; transparency is flattened onto white
(no alpha is stored); palette, CMYK and other colour modes become RGB, 1-bit images 8-bit grayscale;
16-bit samples are reduced to 8 bits; an EXIF orientation is applied so that the decoded image looks
as the input is displayed; of an animation, only the first frame is coded.

The input's ICC profile, EXIF and XMP ride along in the image's `info` (Pillow's keys), the EXIF
orientation set to 1 once it is applied; an ICC profile that no longer fits the converted pixels
(a CMYK one on an image converted to RGB) is left out, with a notice. `save_image` writes them back.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps, PngImagePlugin, UnidentifiedImageError

from codec.bitstream import MAX_PIXELS, MAX_SIDE, METADATA_NAMES
from codec.errors import BitstreamError, ConversionWarning, ImageError

ORIENTATION = 0x0112  # the EXIF tag
EXIF_GROUPS = (0x8769, 0x8825, 0xA005)  # the EXIF, GPS and interoperability IFDs


def _notice(message: str) -> None:
    warnings.warn(message, ConversionWarning, stacklevel=3)


def open_image(source: str | Path | BinaryIO | bytes | Image.Image) -> Image.Image:
    """The input as an 8-bit "RGB" or "L" image, loaded, oriented and converted, its metadata in
    `info`. A binary file (such as standard input, read into memory: Pillow needs to seek) is named
    "standard input" in messages; bytes are an encoded image (a PNG's, a JPEG's...)."""
    if isinstance(source, Image.Image):
        return _normalize(source, "image")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(source), "image bytes")
    if not isinstance(source, (str, Path)) and not hasattr(source, "read"):
        raise ImageError(f"an image is a path, an open binary file, encoded image bytes or a PIL image, not {type(source).__name__}")
    stream = hasattr(source, "read")
    return _open(source, "standard input") if stream else _open(Path(source), Path(source))


def _open(source: Path | BinaryIO, path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
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
    original = image
    if image.format == "TIFF" and EXIF_GROUPS[0] in image.getexif():  # Pillow reads a TIFF's EXIF as its own tags
        _notice(f"{name}: the EXIF in its TIFF tags is not carried (EXIF of JPEG, PNG and WebP inputs is)")
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        _notice(f"{name}: animated ({frames} frames): only the first frame is coded")
        image = image.copy()  # that frame alone, which a second look does not call animated
    orientation = image.getexif().get(ORIENTATION, 1)
    if orientation in range(2, 9):  # 1 is upright; anything else is no orientation EXIF defines
        image = ImageOps.exif_transpose(image)
        exif = image.getexif()
        exif[ORIENTATION] = 1  # applied: the decoded image is displayed as it is
        image.info["exif"] = exif.tobytes()
        _notice(f"{name}: rotated/flipped as its EXIF orientation ({orientation}) says")
    metadata = metadata_of(image)
    if "exif" in metadata and not exif_parses(metadata["exif"]):  # a file that carried it could not be decoded
        _notice(f"{name}: its EXIF does not parse: it is left out")
        del metadata["exif"]
        image = image.copy() if image is original else image  # the caller's image keeps its info
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
    if image is original:  # the caller's, or as read: its info holds the metadata already
        return image
    space = icc_colour_space(metadata.get("icc"))
    if space is not None and space != image.mode:
        _notice(f"{name}: its ICC profile ({space}) does not fit the image converted to {image.mode}: it is left out")
        del metadata["icc"]
    image.info = with_metadata({}, metadata)
    return image


def icc_colour_space(icc: bytes | None) -> str | None:
    """The colour space of an ICC profile as an image mode ("RGB", "L", or its own four letters)."""
    if icc is None:
        return None
    space = icc[16:20].decode("latin-1").strip()
    return {"GRAY": "L"}.get(space, space)


def metadata_of(image: Image.Image) -> dict[str, bytes]:
    """The ICC profile, EXIF and XMP in an image's info, as a file stores them ("icc", "exif", "xmp"):
    EXIF without JPEG's "Exif\\0\\0", XMP as UTF-8 (PNG's iTXt gives text)."""
    found = {}
    icc = image.info.get("icc_profile")
    exif = image.info.get("exif")
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if icc:
        found["icc"] = bytes(icc)
    if exif:
        found["exif"] = bytes(exif[6:] if exif.startswith(b"Exif\0\0") else exif)
    if xmp:
        found["xmp"] = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return found


def with_metadata(info: dict, metadata: dict[str, bytes]) -> dict:
    """An image's info with the metadata a file carried, under Pillow's keys."""
    keys = {"icc": "icc_profile", "exif": "exif", "xmp": "xmp"}
    return {**info, **{keys[kind]: data for kind, data in metadata.items()}}


def exif_parses(exif: bytes) -> bool:
    """Whether Pillow parses EXIF and writes it again, as the TIFF writer does (its warnings about
    odd tags, common in cameras' EXIF, are not failures)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tags = Image.Exif()
            tags.load(exif)
            for group in EXIF_GROUPS:
                tags.get_ifd(group)
            tags.tobytes()
    except Exception:  # noqa: BLE001 - whatever Pillow's parser raises on garbage
        return False
    return True


def check_metadata(metadata: dict[str, bytes]) -> None:
    """Refuse a file's EXIF that does not parse (only a damaged file's: compress leaves such EXIF
    out) as a BitstreamError. The container has checked the entries' outward form already."""
    if "exif" in metadata and not exif_parses(metadata["exif"]):
        raise BitstreamError("corrupted file (its EXIF does not parse)")


def is_grey(image: Image.Image) -> bool:
    """Whether an 8-bit image holds greys only: mode "L", or "RGB" with three equal channels."""
    if image.mode == "L":
        return True
    red, green, blue = image.split()
    return ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None


def save_image(image: Image.Image, file: BinaryIO, kind: str) -> list[str]:
    """Write a decoded image as PNG, TIFF, BMP or PPM with the metadata in its info; returns the
    names of what the format cannot carry (BMP and PPM carry none), which is left out."""
    metadata = metadata_of(image)
    if kind == "PNG":
        text = PngImagePlugin.PngInfo()
        if "xmp" in metadata:
            text.add_itxt("XML:com.adobe.xmp", metadata["xmp"].decode("utf-8"))
        image.save(file, format=kind, icc_profile=metadata.get("icc"), exif=metadata.get("exif", b""), pnginfo=text)
        return []
    if kind == "TIFF":
        tags = Image.Exif()  # EXIF's tags become the TIFF's own, XMP tag 700, as TIFF stores them
        if "exif" in metadata:
            tags.load(metadata["exif"])
        if "xmp" in metadata:
            tags[700] = metadata["xmp"]
        image.save(file, format=kind, icc_profile=metadata.get("icc"), exif=tags)
        return []
    image.save(file, format=kind)
    return [METADATA_NAMES[kind] for kind in metadata]


def to_tensor(image: Image.Image, multiple: int = 1) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]; grayscale is replicated to three channels. H and W are padded
    right and bottom to multiples of `multiple` (a model's downsampling) by edge replication, in
    8 bits, before the float copy, which takes four times the memory."""
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
