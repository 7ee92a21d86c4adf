"""What the checkerboard context costs in coding time: a variable-rate model against the same weights
with a checkerboard context added at zero (as `codec train --arch gained-checkerboard-hyperprior
--init MODEL` starts it), which codes the same image in three streams, with the context's second pass.

Each image is compressed and decompressed by both in turn, repeat by repeat, so both see the same
machine load; the report gives median times, their ratio, and checks that the decoded images are the
same (the context is zero) and the streams' total within 0.1 %. Pause other work first.

    python benchmarks/context_cost.py ../shared/data/kodak --model vr3 --threads 2
"""

import argparse
import statistics
import time

import torch

from codec.api import rate_position
from codec.fileio import image_files
from codec.image import open_image, to_tensor
from codec.models.architectures import build_model
from codec.registry import default_card, get_card, load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder of images (Kodak)")
    parser.add_argument("--model", default=None, help="a variable-rate model without a context (default: the default one)")
    parser.add_argument("--quality", type=float, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--count", type=int, default=6, help="images to time (the first ones)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    card = get_card(args.model) if args.model else default_card()
    plain = load_model(card)
    context = build_model("gained-checkerboard-hyperprior", **card.config)
    missing, unexpected = context.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(key.startswith(context.neutral_extensions) for key in missing)
    context.update(force=True)
    context.eval()
    position = rate_position(plain, round(args.quality * 100))
    times = {name: {"compress": [], "decompress": []} for name in ("plain", "context")}
    for path in image_files(args.images)[: args.count]:
        x = to_tensor(open_image(path), plain.downsampling)
        decoded, sizes = {}, {}
        for _ in range(args.repeats):
            for name, net in (("plain", plain), ("context", context)):
                with torch.inference_mode():
                    start = time.perf_counter()
                    strings = net.compress(x, position)
                    middle = time.perf_counter()
                    decoded[name] = net.decompress(strings, *x.shape[-2:], position)
                    end = time.perf_counter()
                times[name]["compress"].append(middle - start)
                times[name]["decompress"].append(end - middle)
                sizes[name] = sum(map(len, strings))
        assert torch.equal(decoded["plain"], decoded["context"]), path
        # The same symbols, in one more stream: its own ending (the coder's final state) costs up to 8 bytes.
        assert abs(sizes["context"] - sizes["plain"]) <= 8 + 1e-3 * sizes["plain"], (path, sizes)
    print(f"{card.name} at quality {args.quality:g}, {args.count} images x {args.repeats}, {args.threads} threads; medians")
    print("| | plain (s) | with the context (s) | ratio |\n|---|---|---|---|")
    for step in ("compress", "decompress"):
        a, b = (statistics.median(times[name][step]) for name in ("plain", "context"))
        print(f"| {step} | {a:.3f} | {b:.3f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
