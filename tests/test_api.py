"""codec.compress / codec.decompress: sizes, input modes, and the errors a user can meet."""

import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import codec
from codec.image import open_image, to_image, to_tensor
from models.registry import load_model, save_model, user_dir
from tests.conftest import SMALL, natural_image, small_model


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (64, 64), (10000, 10), (10, 700)])
def test_any_size_round_trips_to_the_same_size(tiny_model, size):
    image = natural_image(*size)
    decoded = codec.decompress(codec.compress(image, model="tiny"))
    assert decoded.size == size and decoded.mode == "RGB"


def test_decoded_image_is_the_quantized_forward_pass(tiny_model):
    image = natural_image(75, 40)
    model = load_model(tiny_model)
    with torch.inference_mode():
        x_hat = model(to_tensor(image, model.downsampling))["x_hat"][..., :40, :75]
    expected = to_image(x_hat, "RGB")
    assert np.array_equal(np.asarray(codec.decompress(codec.compress(image, model="tiny"))), np.asarray(expected))


def test_grayscale_decodes_to_grayscale(tiny_model):
    image = natural_image(40, 30).convert("L")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decoded = codec.decompress(codec.compress(image, model="tiny"))
    assert decoded.mode == "L" and decoded.size == (40, 30)


def test_transparency_is_flattened_onto_white_with_a_notice():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 0
    rgba[1:, :, 3] = 255
    rgba[0, 1:, 3] = 255
    with pytest.warns(codec.ConversionWarning, match="transparency flattened onto white"):
        image = open_image(Image.fromarray(rgba, "RGBA"))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((1, 1)) == (200, 0, 0)


def test_opaque_alpha_is_dropped_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_image(natural_image(8, 8).convert("RGBA")).mode == "RGB"


def test_palette_becomes_rgb():
    image = open_image(natural_image(16, 16).convert("P"))
    assert image.mode == "RGB"


def test_sixteen_bit_grayscale_is_reduced_with_a_notice(tmp_path):
    samples = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(samples).save(path)
    with pytest.warns(codec.ConversionWarning, match="16-bit"):
        image = open_image(path)
    assert image.mode == "L" and list(np.asarray(image).ravel()) == [0, 1, 255, 128]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_rgb16_png(path, array):
    """A 48-bit PNG written by hand (Pillow cannot write one)."""
    height, width, _ = array.shape
    raw = b"".join(b"\0" + array[row].astype(">u2").tobytes() for row in range(height))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def test_sixteen_bit_rgb_is_reduced_with_a_notice(tmp_path):
    path = tmp_path / "rgb16.png"
    write_rgb16_png(path, np.full((3, 5, 3), 65535, np.uint16))
    with pytest.warns(codec.ConversionWarning, match="16-bit"):
        image = open_image(path)
    assert image.mode == "RGB" and image.size == (5, 3) and image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path, tiny_model):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    natural_image(40, 20).save(path, exif=exif)
    with pytest.warns(codec.ConversionWarning, match="EXIF orientation"):
        data = codec.compress(path, model="tiny")
    assert codec.decompress(data).size == (20, 40)


def test_cmyk_becomes_rgb_with_a_notice():
    with pytest.warns(codec.ConversionWarning, match="CMYK converted to RGB"):
        assert open_image(natural_image(8, 8).convert("CMYK")).mode == "RGB"


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such file"), (b"", "not an image"), (b"hello, world", "not an image"), (b"\x89PNG\r\n\x1a\n", "not an image|cannot decode")],
)
def test_bad_inputs(tmp_path, content, message):
    path = tmp_path / "input.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(codec.ImageError, match=message):
        open_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + png_chunk(b"IEND", b""))
    with pytest.raises(codec.ImageError, match="too large"):
        open_image(path)


def test_quality_and_model_are_exclusive(tiny_model):
    with pytest.raises(codec.ModelError, match="not both"):
        codec.compress(natural_image(8, 8), quality=3, model="tiny")


def test_unknown_model_and_quality(codec_home):
    with pytest.raises(codec.ModelError, match="unknown model 'nope'"):
        codec.compress(natural_image(8, 8), model="nope")
    with pytest.raises(codec.ModelError, match="no shipped model for quality 99"):
        codec.compress(natural_image(8, 8), quality=99)


def test_file_of_a_missing_model(tiny_model):
    data = codec.compress(natural_image(8, 8), model="tiny")
    tiny_model.weights_path.unlink()
    (user_dir() / "tiny.json").unlink()
    with pytest.raises(codec.ModelError, match="coded with model 'tiny', which is not installed"):
        codec.decompress(data)


def test_file_of_other_weights_is_refused(tiny_model):
    data = codec.compress(natural_image(8, 8), model="tiny")
    save_model(small_model(seed=1), user_dir(), name="tiny", arch="mean-scale-hyperprior",
               config={**SMALL, "hyper_attention": "none"}, lmbda=0.01, metric="mse")
    with pytest.raises(codec.ModelError, match="other weights"):
        codec.decompress(data)


def test_tampered_weights_file_is_refused(tiny_model):
    data = bytearray(tiny_model.weights_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tiny_model.weights_path.write_bytes(bytes(data))
    with pytest.raises(codec.ModelError, match="does not match"):
        codec.compress(natural_image(8, 8), model="tiny")


def test_compress_to_target_picks_the_neighbouring_levels():
    """Between two shipped levels' rates, a bpp target takes the lower level and a PSNR target the
    higher one; beyond the ends, the nearest end, marked as not met."""
    from codec.api import compress_to_target
    from codec.metrics import bits_per_pixel, psnr
    from models.registry import quality_levels

    image = natural_image(128, 96, seed=5)
    levels = [card.quality for card in quality_levels()]
    coded = {q: codec.compress(image, quality=q) for q in levels[:2]}
    rates = [bits_per_pixel(len(coded[q]), image) for q in levels[:2]]
    qualities = [psnr(image, codec.decompress(coded[q])) for q in levels[:2]]
    by_rate = compress_to_target(image, bpp=sum(rates) / 2)
    assert (by_rate.quality, by_rate.met, by_rate.data) == (levels[0], True, coded[levels[0]])
    by_quality = compress_to_target(image, psnr=sum(qualities) / 2)
    assert (by_quality.quality, by_quality.met) == (levels[1], True)
    assert by_quality.psnr == pytest.approx(qualities[1])
    assert compress_to_target(image, bpp=1e-4)[1:] == (levels[0], rates[0], None, False)
    assert compress_to_target(image, psnr=99).quality == levels[-1]
    with pytest.raises(codec.CodecError):
        compress_to_target(image)
