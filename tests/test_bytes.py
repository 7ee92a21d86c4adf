"""What the encoder writes and the decoder returns, against sha256 digests recorded before a change:
a refactoring that should not change behaviour is checked here, byte for byte.

Coding runs in float32 (coding.DTYPE), which every CPU computes (earlier float32 records passed on CI's machines); the bfloat16 path
depends on the CPU's instructions and is pinned per machine by `benchmarks/recorded_bytes.py`. To
record anew after a deliberate change of the format or the weights, print the digests these tests
compute and paste them.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import codec
from tests.helpers import checkerboard_model, natural_image, small_model, variable_model
from codec.image import to_tensor
from codec.models import coding
from codec.models.architectures import ARCHITECTURES

SAMPLE = Path(__file__).parents[1] / "data" / "sample.png"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def coded(image, **options) -> tuple[str, str]:
    """Digests of the file and of the decoded pixels."""
    data = codec.compress(image, **options)
    return digest(data), digest(np.asarray(codec.decompress(data)).tobytes())


@pytest.fixture(autouse=True)
def float32_coding(monkeypatch):
    monkeypatch.setattr(coding, "DTYPE", torch.float32)


@pytest.mark.parametrize("quality, expected", [
    (None, ("4bcf2e6d3368b441006a5914cfed3e861ffddcfc78f8aeaa05293933815b3230",
            "304ddc4f018f3f8825eea6d0377d744496ab4902271c63cd8ec308556db35f72")),
    (10, ("2dfe0f10b545b89df43259c793f22ba960207b2b1b53108fa8b7946519ef78a8",
          "3f2e1fa44817e17217bce0c052c67b7feb7a1658d816d4842902d75d0c8edd80")),
    (100, ("f262cccb9ea9dd71a752c7731468b96c00289d5b1de06ec3a45d64a9e7be5c33",
           "ea9a3f52f13fbd1d9f2b51393ee105088915ada3486f003fe85a9c62f4fb24bc")),
])
def test_the_readmes_sample_codes_as_recorded(quality, expected):
    assert coded(SAMPLE, quality=quality) == expected


def test_the_encoders_search_codes_as_recorded():
    assert coded(natural_image(96, 64, seed=7), quality=50, effort=1) == (
        "9399212038dc3d1abfe99f815e6bf1e26abae7ca251ad7459d9b8cfccf5dbf97",
        "ce909a312cae25957188d2c24de2f9a0cf1b99b452a96e256c3bbbfda62d0113")


def test_tiled_coding_codes_as_recorded(monkeypatch):
    monkeypatch.setattr(coding, "WHOLE_PIXELS", 1 << 10)  # every transform in tiles
    assert coded(natural_image(160, 112, seed=8), quality=80) == (
        "b133e74025caee256499bf8d21dbae9b992704dae0d5d7e09b68ca5cc5a6814d",
        "3961200db25724a6332bb1df22dfdc46c7edd637f8394c94c1d0cacda8f9724b")


RECORDED_ARCHITECTURES = {
    "factorized": ("cc18d4bdbc57134262e5dc531edfdffac3b864dc8b0117cf2588376f86b97924",
                   "076dc262c669e02a085b19eeabe83022a5533828071d8b89ad815118732d1d08"),
    "scale-hyperprior": ("7b418185976a50c7edd1ac1d14e0a68fa9c2870d5cc888cd6e00143693561248",
                         "076dc262c669e02a085b19eeabe83022a5533828071d8b89ad815118732d1d08"),
    "mean-scale-hyperprior": ("729011ae62d1ada3eaff7e816b4f1ffc9c941a63e1fd15a9fd7e3dbff60b24a7",
                              "ac34662908da8bdda2e36919f46622a0f27d4c7d050740143c150fbd401060f7"),
    "gained-mean-scale-hyperprior": ("729011ae62d1ada3eaff7e816b4f1ffc9c941a63e1fd15a9fd7e3dbff60b24a7",
                                     "ac34662908da8bdda2e36919f46622a0f27d4c7d050740143c150fbd401060f7"),
    "gained-checkerboard-hyperprior": ("e58be64895fca595e4bf2b25a9f10dacd0ab104100e3c91e88c4d080db9c99fc",
                                       "c936b87330f02aef4d6a583400fef9bd5230aea7a07adcc130029acce8203cae"),
}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_codes_as_recorded(arch):
    """A seeded small model of each architecture, its analysis scaled so that the latents span many
    symbols, through its own compress and decompress (the variable-rate ones at rate position 4)."""
    assert arch in RECORDED_ARCHITECTURES, f"record {arch}'s digests here"
    model = checkerboard_model() if arch == "gained-checkerboard-hyperprior" else small_model(arch)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(40)
        model.g_a[-1].bias.mul_(40)
    model.update(force=True)
    position = 4.0 if "gained" in arch else None
    x = to_tensor(natural_image(128, 64, seed=5), 64)
    with torch.inference_mode():
        strings = model.compress(x, position)
        x_hat = model.decompress(strings, 64, 128, position)
    pixels = (x_hat * 255).round().to(torch.uint8).numpy().tobytes()
    assert (digest(b"".join(strings)), digest(pixels)) == RECORDED_ARCHITECTURES[arch]


def test_gained_streams_code_as_recorded():
    """Streams of a seeded small variable-rate model whose gains span 1 to 100, at two rate positions,
    and of a factorized model, as recorded before the CDF tables came from CompressAI's defaults."""
    x = to_tensor(natural_image(128, 64, seed=5), 64)
    model = variable_model()
    with torch.inference_mode():
        streams = {position: b"".join(model.compress(x, position)) for position in (4.0, 8.0)}
        streams["factorized"] = small_model("factorized").compress(x)[0]
    assert {key: digest(data) for key, data in streams.items()} == {
        4.0: "ee0b009e8756daf50a09423a69996d213642d518462b0e03c4de378633f7bc4c",
        8.0: "68436da2b0f133a638347109b457480f4b11ab30b6fac7d146bfc63509526315",
        "factorized": "f1e6ba0c720483f82c3511de7d25550b87b38b6c721d9f8f8fc51fc4b44d7cd7",
    }
