"""BD-rate (PSNR-RGB) of one ladder of models against another, from their manifests' Kodak scores.

`codec eval` pools every model it codes into one curve; this compares two sets of models, e.g. a
new ladder against the one it replaces, without coding anything again (each manifest's Kodak score
is the same mean over the 24 images that `codec eval` computes).

    python benchmarks/ladders.py msh-q1,msh-q2,msh-q3,msh-q4,msh-q5,msh-q6 msh2-q1,msh2-q2,...
"""

import argparse

from codec.report import bd_rate
from codec.registry import get_card


def curve(names: str) -> list[dict]:
    points = []
    for name in names.split(","):
        kodak = get_card(name).kodak
        if not kodak:
            raise SystemExit(f"model {name} has no Kodak scores in its manifest")
        points.append({"bpp": kodak["bpp"], "psnr": kodak["psnr"]})
    return sorted(points, key=lambda point: point["bpp"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("anchor", help="comma-separated model names")
    parser.add_argument("test", help="comma-separated model names")
    args = parser.parse_args()
    anchor, test = curve(args.anchor), curve(args.test)
    value = bd_rate(anchor, test, "psnr")
    span = max(anchor[0]["bpp"], test[0]["bpp"]), min(anchor[-1]["bpp"], test[-1]["bpp"])
    result = "undefined (no overlap)" if value is None else f"{value:+.1f} %"
    print(f"BD-rate PSNR of {args.test} against {args.anchor}: {result} (rates shared: {span[0]:.3f}–{span[1]:.3f} bpp)")


if __name__ == "__main__":
    main()
