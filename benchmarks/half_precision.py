"""Does storing the transforms' weights in half precision cost anything? Codes a folder of images
with a checkpoint's weights as trained (float32) and as shipped (codec.registry.compact_state);
a variable-rate model at its lowest, middle and highest rates.

    python benchmarks/half_precision.py runs/vr.ckpt ../shared/data/kodak
"""

import argparse

import torch

from codec.image import open_image, to_image, to_tensor
from codec.metrics import psnr
from codec.fileio import image_files
from codec.training.checkpoint import Checkpoint
from codec.training.config import TrainConfig
from codec.models.architectures import build_model
from codec.registry import compact_state


def coded(model, image, position: float | None) -> tuple[float, float]:
    """(bits per pixel of the entropy-coded streams, PSNR) of one image (at a variable-rate model's
    rate position)."""
    padded = to_tensor(image, model.downsampling)
    with torch.inference_mode():
        strings = model.compress(padded, position)
        x_hat = model.decompress(strings, *padded.shape[-2:], position)[..., : image.height, : image.width]
    bits = 8 * sum(len(s) for s in strings)
    return bits / (image.width * image.height), psnr(image, to_image(x_hat, "RGB"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("images")
    args = parser.parse_args()
    state = Checkpoint.load(args.checkpoint)
    config = Checkpoint.config(state)
    models = {}
    for label, weights in (("float32", Checkpoint.weights(state)), ("half", compact_state_of(Checkpoint.weights(state), config))):
        model = build_model(config.arch, **config.model_config())
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
        model.update(force=True)
        models[label] = model.eval()
    anchors = getattr(models["float32"], "anchors", None)
    positions = [None] if anchors is None else [0.0, (anchors - 1) / 2, anchors - 1.0]
    files = image_files(args.images)
    for position in positions:
        totals = {label: [0.0, 0.0] for label in models}
        for path in files:
            image = open_image(path)
            for label, model in models.items():
                bpp, quality = coded(model, image, position)
                totals[label][0] += bpp / len(files)
                totals[label][1] += quality / len(files)
        at = "" if position is None else f"rate position {position:g}: "
        for label, (bpp, quality) in totals.items():
            print(f"{at}{label:8s} {bpp:.4f} bpp  {quality:.3f} dB  ({len(files)} images)")
        (b32, p32), (b16, p16) = totals["float32"], totals["half"]
        print(f"{at}half - float32: {100 * (b16 / b32 - 1):+.3f} % bpp, {p16 - p32:+.4f} dB")


def compact_state_of(state: dict, config: TrainConfig) -> dict:
    model = build_model(config.arch, **config.model_config())
    model.load_state_dict(state)
    return compact_state(model)


if __name__ == "__main__":
    main()
