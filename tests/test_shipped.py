"""The shipped models: present, intact, in order, and coding the project's sample image."""

import math
from pathlib import Path

import torch

import codec
from codec.image import open_image, to_tensor
from codec.metrics import psnr
from models.registry import DEFAULT_QUALITY, SHIPPED_DIR, card_for_quality, list_models, load_model, quality_levels

SAMPLE = Path(__file__).parents[1] / "data" / "sample.png"


def test_every_shipped_model_has_a_complete_manifest():
    shipped = [card for card in list_models() if card.directory == SHIPPED_DIR]
    assert shipped, "no shipped model"
    for card in shipped:
        load_model(card)  # checks the sha256
        assert card.training["steps"] > 0 and card.training["hardware"]
        assert {"bpp", "psnr", "ms_ssim", "images"} <= set(card.kodak) and card.kodak["images"] == 24


def test_default_model_codes_the_sample_image():
    card = card_for_quality(DEFAULT_QUALITY)
    data = codec.compress(SAMPLE)
    decoded = codec.decompress(data)
    reference = open_image(SAMPLE)
    assert decoded.size == reference.size
    assert psnr(reference, decoded) > 25
    # The real file is within 3 % of the entropy models' estimate, plus its header.
    model = load_model(card)
    with torch.inference_mode():
        likelihoods = model(to_tensor(reference, model.downsampling))["likelihoods"]
    estimate = sum(-torch.log2(l).sum().item() for l in likelihoods.values()) / 8
    header = 28 + len(card.name) + 4 * len(model.latent_names)
    assert math.isclose(len(data) - header, estimate, rel_tol=0.03)


def test_every_shipped_model_decodes_its_own_files():
    """Earlier rate points stay shipped, without a quality level, so that their files still decode."""
    image = open_image(SAMPLE).crop((0, 0, 96, 64))
    for card in list_models():
        if card.directory == SHIPPED_DIR:
            assert psnr(image, codec.decompress(codec.compress(image, model=card.name))) > 20, card.name


def test_quality_levels_climb_in_rate_and_quality_on_kodak():
    scores = [(card.kodak["bpp"], card.kodak["psnr"]) for card in quality_levels()]
    assert len(scores) >= 6
    assert all(low[0] < high[0] and low[1] < high[1] for low, high in zip(scores, scores[1:]))
