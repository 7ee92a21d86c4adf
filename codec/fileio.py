"""Files: finding the images in a folder, and writing so that a failure never leaves a half-written output."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from codec.errors import CodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}


def files_in(folder: Path, suffixes: set[str]) -> list[Path]:
    """The files under a folder with one of these suffixes, recursively, in a stable order; hidden
    ones (a name, or a folder on the way, starting with ".") are left out, as `ls` leaves them."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def image_files(folder: str | Path) -> list[Path]:
    """The image files under a folder, recursively, in a stable order (hidden ones left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CodecError(f"{folder}: not a directory")
    files = files_in(folder, IMAGE_SUFFIXES)
    if not files:
        raise CodecError(f"{folder}: no images found")
    return files


def atomic_write(path: str | Path, write: Callable) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it over `path`. A failure of
    the file system names `path`, the file the caller asked for, never the temporary one."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 is for secrets, not images
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename != str(path):
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))
