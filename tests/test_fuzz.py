"""A short fuzz run of the decoder on a small file (benchmarks/fuzz.py runs the long one)."""

import codec
from codec.fuzz import fuzz
from tests.conftest import natural_image


def test_damaged_files_end_in_clean_errors_or_images(tiny_model):
    data = codec.compress(natural_image(50, 30), model="tiny")
    outcomes = fuzz(data, count=300, max_pixels=128 * 128)
    crashes = [key for key in outcomes if key.startswith("crash")]
    assert crashes == []
    assert outcomes["inputs"] == len(data) + 300
    assert outcomes["clean error"] >= len(data)  # every truncation at least
