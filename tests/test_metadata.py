"""An input's ICC profile, EXIF and XMP: carried in the file, written back into PNG and TIFF, left out
on request or where a format cannot carry them, with a note; and grey-only inputs decoded as grey."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import codec
from codec.bitstream import Bitstream
from codec.image import metadata_of, save_image
from tests.helpers import SRGB, XMP, assert_one_line_error, exif, natural_image, photo, run, xmp_text

# The orientation tag typed UNDEFINED instead of SHORT: Pillow reads it, but cannot write it again.
UNPARSABLE_EXIF = exif().tobytes()[6:].replace(b"\x01\x12\x00\x03", b"\x01\x12\x00\x07")


def test_metadata_rides_in_the_file_and_comes_back(tiny_model, tmp_path):
    data = codec.compress(photo(tmp_path / "photo.png"), model="tiny")
    stream = Bitstream.from_bytes(data)
    assert data[4] == 3 and sorted(stream.metadata) == ["exif", "icc", "xmp"]
    decoded = codec.decompress(data)
    assert decoded.info["icc_profile"] == SRGB and decoded.info["xmp"] == XMP.encode()
    tags = Image.Exif()
    tags.load(decoded.info["exif"])
    assert tags[0x010F] == "Maker" and tags.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    plain = codec.compress(natural_image(40, 24), model="tiny")
    assert codec.compress(tmp_path / "photo.png", model="tiny", metadata=False) == plain  # version 2, as before
    assert plain[4] == 2 and Bitstream.from_bytes(plain).metadata == {}
    assert len(data) - len(plain) == 1 + 5 * 3 + len(SRGB) + len(stream.metadata["exif"]) + len(XMP)
    (tmp_path / "photo.lic").write_bytes(data)
    lines = dict(line.split(None, 1) for line in run("info", tmp_path / "photo.lic").stdout.splitlines()[1:])
    assert lines["format"] == "version 3" and lines["metadata"] == (
        f"ICC profile {len(SRGB):,} bytes, EXIF {len(stream.metadata['exif']):,} bytes, XMP {len(XMP):,} bytes")
    assert lines["streams"].endswith(f"header and CRC {len(plain) - sum(map(len, stream.streams)) + 16:,} bytes")


def test_an_applied_orientation_is_written_back_as_1(tiny_model, tmp_path):
    with pytest.warns(codec.ConversionWarning, match="EXIF orientation"):
        data = codec.compress(photo(tmp_path / "rotated.png", orientation=6), model="tiny")
    decoded = codec.decompress(data)
    assert decoded.size == (24, 40) and decoded.getexif()[0x0112] == 1 and decoded.getexif()[0x010F] == "Maker"


@pytest.mark.filterwarnings("ignore:image. CMYK converted to RGB")
def test_a_profile_that_no_longer_fits_is_left_out_with_a_notice(tiny_model):
    cmyk = natural_image(8, 8).convert("CMYK")
    cmyk.info["icc_profile"] = SRGB[:16] + b"CMYK" + SRGB[20:]  # a CMYK profile's header
    with pytest.warns(codec.ConversionWarning, match=r"its ICC profile \(CMYK\) does not fit the image converted to RGB"):
        data = codec.compress(cmyk, model="tiny")
    assert Bitstream.from_bytes(data).metadata == {}


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_decompress_writes_the_metadata_into_png_and_tiff(tiny_model, tmp_path, kind):
    assert run("compress", photo(tmp_path / "photo.png"), "--model", "tiny").exit_code == 0
    result = run("decompress", tmp_path / "photo.lic", "-o", tmp_path / f"back.{kind}")
    assert result.exit_code == 0 and "note:" not in result.stderr, result.output
    back = Image.open(tmp_path / f"back.{kind}")
    assert metadata_of(back)["icc"] == SRGB and metadata_of(back)["xmp"] == XMP.encode()
    assert back.getexif()[0x010F] == "Maker" and back.getexif().get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"


def test_a_format_without_metadata_says_what_it_leaves_out(tiny_model, tmp_path):
    assert run("compress", photo(tmp_path / "photo.png"), "--model", "tiny").exit_code == 0
    result = run("decompress", tmp_path / "photo.lic", "-o", tmp_path / "back.bmp")
    assert result.exit_code == 0, result.output
    assert f"note: {tmp_path / 'back.bmp'}: BMP cannot carry the file's ICC profile, EXIF, XMP: left out" in result.stderr


def test_strip_leaves_the_metadata_out_with_a_note(tiny_model, tmp_path):
    source = photo(tmp_path / "photo.png")
    result = run("compress", source, "--model", "tiny", "--strip")
    assert result.exit_code == 0 and "photo.png: ICC profile, EXIF, XMP left out (--strip)" in result.stderr, result.output
    assert (tmp_path / "photo.lic").read_bytes() == codec.compress(natural_image(40, 24), model="tiny")
    result = run("compress", source, "--model", "tiny", "--strip", "--force", "--quiet")
    assert result.exit_code == 0 and result.output == ""


def test_grey_only_inputs_decode_as_grey(tiny_model):
    grey = natural_image(30, 20).convert("L")
    for image in (grey.convert("RGB"), grey.convert("P"), grey.convert("RGBA"), grey):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", codec.ConversionWarning)
            data = codec.compress(image, model="tiny")
        assert Bitstream.from_bytes(data).mode == "L" and codec.decompress(data).mode == "L", image.mode
    assert codec.decompress(codec.compress(natural_image(30, 20), model="tiny")).mode == "RGB"
    tagged = grey.convert("RGB")
    tagged.info["icc_profile"] = SRGB  # an RGB profile, which a grayscale PNG may not carry: stays RGB
    assert codec.decompress(codec.compress(tagged, model="tiny")).mode == "RGB"
    assert codec.decompress(codec.compress(tagged, model="tiny", metadata=False)).mode == "L"


def test_damaged_exif_is_a_one_line_bitstream_error(tiny_model, tmp_path):
    from dataclasses import replace

    stream = Bitstream.from_bytes(codec.compress(photo(tmp_path / "photo.png"), model="tiny"))
    damaged = replace(stream, metadata={**stream.metadata, "exif": UNPARSABLE_EXIF}).to_bytes()
    with pytest.raises(codec.BitstreamError, match=r"^corrupted file \(its EXIF does not parse\)$"):
        codec.decompress(damaged)
    (tmp_path / "damaged.lic").write_bytes(damaged)
    assert_one_line_error(run("decompress", tmp_path / "damaged.lic", "-o", tmp_path / "out.png"), "its EXIF does not parse")
    assert not (tmp_path / "out.png").exists()


def test_save_image_writes_every_lossless_format(tmp_path):
    image = natural_image(6, 4)
    image.info.update(icc_profile=SRGB, xmp=XMP.encode())
    for kind in ("PNG", "TIFF", "BMP", "PPM"):
        buffer = io.BytesIO()
        left_out = save_image(image, buffer, kind)
        assert left_out == ([] if kind in ("PNG", "TIFF") else ["ICC profile", "XMP"])
        assert np.array_equal(np.asarray(Image.open(buffer)), np.asarray(image)), kind


def test_a_tiffs_exif_is_noted_as_not_carried(tmp_path):
    from codec.image import open_image

    path = tmp_path / "scan.tif"
    natural_image(8, 6).save(path, exif=exif().tobytes(), icc_profile=SRGB)  # bytes: Pillow then writes the EXIF IFD
    with pytest.warns(codec.ConversionWarning, match="the EXIF in its TIFF tags is not carried"):
        image = open_image(path)
    assert metadata_of(image) == {"icc": SRGB}


def test_exif_that_does_not_parse_is_left_out_with_a_notice(tiny_model):
    image = natural_image(8, 6)
    image.info["exif"] = b"Exif\0\0" + UNPARSABLE_EXIF
    with pytest.warns(codec.ConversionWarning, match="its EXIF does not parse: it is left out"):
        data = codec.compress(image, model="tiny")
    assert Bitstream.from_bytes(data).metadata == {} and "exif" in image.info  # the caller's image is left alone
