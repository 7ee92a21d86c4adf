"""What several test files share: generated images, small untrained models, the CLI's runner.
Fixtures are in conftest.py; test files import from here and never from each other."""

import copy
import functools

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from typer.testing import CliRunner

from codec.cli.main import app
from codec.models.architectures import build_model
from codec.models.coding import cpu_computes_bfloat16

SMALL = {"N": 16, "M": 32}

# The precisions coding uses: float32 everywhere, bfloat16 where the CPU computes it natively (other
# CPUs emulate it, with no promise about tiles or thread counts, and coding never uses it there).
CODING_DTYPES = [
    torch.float32,
    pytest.param(torch.bfloat16, marks=pytest.mark.skipif(not cpu_computes_bfloat16(), reason="no native bfloat16 on this CPU")),
]


def natural_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth colour gradients plus a little texture: compressible like a photo, unlike noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([np.sin(3 * x + 1) * 0.4 + 0.5, np.cos(2 * y + x) * 0.4 + 0.5, (x + y) / 2.5 + 0.1], axis=-1)
    texture = rng.normal(0, 0.03, (height, width, 1))
    return Image.fromarray((np.clip(base + texture, 0, 1) * 255).astype(np.uint8), "RGB")


def built_once(builder):
    """Build each distinct model once a session and hand out copies: a build (its entropy models'
    tables) costs about ten copies. torch's random state is left as a fresh build leaves it."""
    built = {}

    @functools.wraps(builder)
    def build(*args, **config):
        key = (args, tuple(sorted(config.items())))
        if key not in built:
            built[key] = builder(*args, **config), torch.get_rng_state()
        model, random_state = built[key]
        torch.set_rng_state(random_state)
        return copy.deepcopy(model)

    return build


@built_once
def small_model(arch: str = "mean-scale-hyperprior", seed: int = 0, **config):
    torch.manual_seed(seed)
    model = build_model(arch, **{**SMALL, **config})
    model.update(force=True)
    return model.eval()


def spread_gains(model):
    """Gains from 1 to 100 over the anchors: an untrained model's small latents then span a range of rates."""
    with torch.no_grad():
        model.gain.copy_(torch.logspace(0, 2, model.anchors)[:, None].expand_as(model.gain))
        model.inverse_gain.copy_(1 / model.gain)


@built_once
def variable_model():
    """A small untrained variable-rate model whose rates differ (spread_gains)."""
    model = small_model("gained-mean-scale-hyperprior", hyper_block=4)
    spread_gains(model)
    model.update(force=True)
    return model


@built_once
def checkerboard_model(context_weight: float = 0.05):
    """A small untrained checkerboard model whose rates differ (spread_gains) and whose context,
    zero at init, has random weights that change the second pass's scales and means."""
    model = small_model("gained-checkerboard-hyperprior", hyper_block=4)
    spread_gains(model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.entropy_parameters[-1].parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * context_weight)
    model.update(force=True)
    return model


def image_folder(folder, width: int, height: int, prefix: str = ""):
    """A new folder of three generated images, PREFIX0.png to PREFIX2.png."""
    folder.mkdir()
    for i in range(3):
        natural_image(width, height, seed=i).save(folder / f"{prefix}{i}.png")
    return folder


runner = CliRunner()


def run(*args):
    """The `codec` command in this process, with these arguments."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, fragment):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codec: error:") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


# Metadata as a camera or an editor writes it (tests/test_metadata.py, tests/test_fuzz.py).
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


def exif(orientation: int = 1) -> Image.Exif:
    tags = Image.Exif()
    tags[0x0112] = orientation
    tags[0x010F] = "Maker"
    tags.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal, in the EXIF IFD
    return tags


def photo(path, orientation: int = 1, image: Image.Image | None = None):
    """A PNG with an ICC profile, EXIF and XMP, as a camera's or an editor's would have them."""
    (image or natural_image(40, 24)).save(path, icc_profile=SRGB, exif=exif(orientation), pnginfo=xmp_text())
    return path


def xmp_text():
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP)
    return text
