"""A short fuzz run of the decoder on a small file (benchmarks/fuzz.py runs the long one)."""

import codec
from codec.fuzz import fuzz
from tests.helpers import SMALL, checkerboard_model, natural_image, photo


def test_damaged_files_end_in_clean_errors_or_images(tiny_model):
    data = codec.compress(natural_image(50, 30), model="tiny")
    outcomes = fuzz(data, count=300, max_pixels=128 * 128)
    crashes = [key for key in outcomes if key.startswith("crash")]
    assert crashes == []
    assert outcomes["inputs"] == len(data) + 300
    assert outcomes["clean error"] >= len(data)  # every truncation at least


def test_damaged_checkerboard_files_end_in_clean_errors_or_images(codec_home):
    """Garbage in the anchors' stream becomes the context's input: its exact path clamps it."""
    from codec.registry import save_model, user_dir

    save_model(checkerboard_model(), user_dir(), name="cbfuzz", arch="gained-checkerboard-hyperprior",
               config={**SMALL, "hyper_attention": "none", "hyper_block": 4}, lmbda=None, metric="mse", default_quality=30.0)
    data = codec.compress(natural_image(50, 30), model="cbfuzz")
    outcomes = fuzz(data, count=200, max_pixels=128 * 128)
    assert [key for key in outcomes if key.startswith("crash")] == []
    assert outcomes["inputs"] == len(data) + 200


def test_damaged_metadata_ends_in_clean_errors_or_writable_images(tiny_model, tmp_path):
    """A file that carries an ICC profile, EXIF and XMP, its metadata flipped with the CRC recomputed
    among the other mutations: every decoded image must still write as PNG and TIFF."""
    data = codec.compress(photo(tmp_path / "photo.png", image=natural_image(50, 30)), model="tiny")
    outcomes = fuzz(data, count=200, max_pixels=128 * 128)
    assert [key for key in outcomes if key.startswith("crash")] == []
    assert outcomes["inputs"] == len(data) + 200
