"""Does a model trained on small crops code whole images as well as it codes crops?

A hyperprior trained on 64² crops sees a hyper-latent of 1x1: its h_s never learns to combine
neighbouring hyper-latents, which every whole image asks of it. This script codes the same images
whole and cut into crops of each size (bpp from the likelihoods of the quantized forward pass, y and
z apart, PSNR of its output), so such a gap shows in numbers.

    python benchmarks/crop_generalization.py runs/q3.ckpt ../shared/data/kodak --images 4
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from codec.fileio import image_files
from codec.image import open_image, to_tensor
from codec.training.checkpoint import Checkpoint
from codec.registry import get_card, load_model


def load(source: str) -> torch.nn.Module:
    """A checkpoint written by `codec train` (its shipped weights) or a registered model's name."""
    if Path(source).is_file():
        return Checkpoint.model(Checkpoint.load(Path(source)))
    return load_model(get_card(source))


def crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """The image cut into non-overlapping size x size crops (the remainder dropped)."""
    tiles = x.unfold(2, size, size).unfold(3, size, size)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1], size, size)


def score(model, x: torch.Tensor) -> tuple[float, float, float]:
    """bpp of y, bpp of z, and PSNR of the forward pass in the coding forms over the batch x (as
    validation scores it)."""
    out = model.coding_estimate(x)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    y_bpp, z_bpp = (float(-torch.log2(out["likelihoods"][k]).sum()) / pixels for k in ("y", "z"))
    return y_bpp, z_bpp, float(-10 * torch.log10(F.mse_loss(out["x_hat"].clamp(0, 1), x)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint or registered (hyperprior) model")
    parser.add_argument("images", help="folder of images")
    parser.add_argument("--images", type=int, default=4, dest="count", help="how many of them")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load(args.model).eval()
    rows = {"whole": []} | {f"{size}² crops": [] for size in args.sizes}
    with torch.no_grad():
        for path in image_files(args.images)[: args.count]:
            x = to_tensor(open_image(path).convert("RGB"), 256)  # whole crops of every size tile it
            rows["whole"].append(score(model, x))
            for size in args.sizes:
                rows[f"{size}² crops"].append(score(model, crops(x, size)))
    print(f"{args.model}: {args.count} images of {args.images}")
    for label, values in rows.items():
        y, z, quality = (sum(v[i] for v in values) / len(values) for i in range(3))
        print(f"  {label:12s} y {y:.4f} bpp  z {z:.4f} bpp  PSNR {quality:.2f} dB")


if __name__ == "__main__":
    main()
