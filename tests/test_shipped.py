"""The shipped models: present, intact, in order, and coding the project's sample image."""

import math
from pathlib import Path

import torch

import codec
from codec.image import open_image, to_tensor
from codec.metrics import psnr
from codec.bitstream import Bitstream
from codec.metrics import bits_per_pixel
from codec.registry import SHIPPED_DIR, default_card, list_models, load_model

SAMPLE = Path(__file__).parents[1] / "data" / "sample.png"


def test_every_shipped_model_has_a_complete_manifest():
    shipped = [card for card in list_models() if card.directory == SHIPPED_DIR]
    assert shipped, "no shipped model"
    for card in shipped:
        load_model(card)  # checks the sha256
        assert card.training["steps"] > 0 and card.training["hardware"]
        assert {"bpp", "psnr", "ms_ssim", "images"} <= set(card.kodak) and card.kodak["images"] == 24


def test_default_model_codes_the_sample_image():
    card = default_card()
    data = codec.compress(SAMPLE, effort=0)  # g_a's latents, which the forward pass estimates
    decoded = codec.decompress(data)
    reference = open_image(SAMPLE)
    assert decoded.size == reference.size
    assert psnr(reference, decoded) > 25
    # The real file is within 3 % of the entropy models' estimate, plus its header.
    model = load_model(card)
    position = torch.tensor([card.default_quality / 100 * (model.anchors - 1)])
    with torch.inference_mode():
        likelihoods = model.coding_estimate(to_tensor(reference, model.downsampling), position)["likelihoods"]
    estimate = sum(-torch.log2(l).sum().item() for l in likelihoods.values()) / 8
    header = 30 + len(card.name) + 4 * len(model.latent_names)
    assert math.isclose(len(data) - header, estimate, rel_tol=0.03)


def test_every_shipped_model_decodes_its_own_files():
    """Earlier rate points stay shipped, without a quality level, so that their files still decode."""
    image = open_image(SAMPLE).crop((0, 0, 96, 64))
    for card in list_models():
        if card.directory == SHIPPED_DIR:
            assert psnr(image, codec.decompress(codec.compress(image, model=card.name, effort=0))) > 20, card.name


def test_the_default_models_quality_climbs_in_rate_and_psnr():
    image = open_image(SAMPLE)
    files = [codec.compress(image, quality=q, effort=0) for q in (0, 25, 50, 75, 100)]
    assert [Bitstream.from_bytes(data).quality for data in files] == [0, 2500, 5000, 7500, 10000]
    scores = [(bits_per_pixel(len(data), image), psnr(image, codec.decompress(data))) for data in files]
    assert all(low[0] < high[0] and low[1] < high[1] for low, high in zip(scores, scores[1:]))
