"""Whether the default model still writes the same files and decodes the same pixels on a folder of
images, against sha256 digests recorded before a change (tests/test_bytes.py does the same on
generated images, in float32 only).

The coding precision (codec.models.coding.DTYPE: bfloat16 where the CPU computes it natively,
float32 elsewhere) changes the bytes, so the record keeps one set of digests per precision and a
check compares the set of this machine's.

    python benchmarks/recorded_bytes.py ../shared/data/kodak --record docs/recorded-bytes/kodak-vr3.json
    python benchmarks/recorded_bytes.py ../shared/data/kodak --check docs/recorded-bytes/kodak-vr3.json [--float32]
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

import codec
from codec.fileio import image_files
from codec.models import coding
from codec.registry import default_card


def digests(folder: Path, qualities: list[int]) -> dict[str, list[str]]:
    """'IMAGE@QUALITY' -> [sha256 of the file, sha256 of the decoded pixels]."""
    result = {}
    for path in image_files(folder):
        for quality in qualities:
            data = codec.compress(path, quality=quality, effort=0)
            pixels = np.asarray(codec.decompress(data)).tobytes()
            result[f"{path.relative_to(folder).as_posix()}@{quality}"] = [hashlib.sha256(data).hexdigest(),
                                                                         hashlib.sha256(pixels).hexdigest()]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="folder of images (Kodak)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--record", type=Path, help="write (or add this machine's precision to) this JSON")
    action.add_argument("--check", type=Path, help="compare with this JSON; exit 1 naming every difference")
    parser.add_argument("--qualities", default="10,50,100")
    parser.add_argument("--float32", action="store_true",
                        help="code in float32 where the CPU has bfloat16 too (what CPUs without it compute)")
    args = parser.parse_args()
    if args.float32:
        coding.DTYPE = torch.float32
    qualities = [int(q) for q in args.qualities.split(",")]
    card, precision = default_card(), str(coding.DTYPE).removeprefix("torch.")
    measured = digests(args.images, qualities)
    if args.record:
        record = json.loads(args.record.read_text()) if args.record.exists() else {}
        if record and record.get("model") != card.name:
            parser.error(f"{args.record} records model {record.get('model')}, the default is {card.name}")
        record = {"model": card.name, "weights_sha256": card.sha256, **record}
        record.setdefault("digests", {})[precision] = measured
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(measured)} files of {card.name} in {precision} to {args.record}")
        return
    record = json.loads(args.check.read_text())
    expected = record.get("digests", {}).get(precision)
    if record.get("model") != card.name or expected is None:
        sys.exit(f"{args.check} has no record of {card.name} in {precision}")
    differ = sorted(key for key in expected.keys() | measured.keys() if expected.get(key) != measured.get(key))
    for key in differ:
        was, now = expected.get(key), measured.get(key)
        what = ("not recorded" if was is None else "not measured" if now is None
                else " and ".join(name for name, a, b in zip(("file", "pixels"), was, now) if a != b) + " differ")
        print(f"{key}: {what}")
    print(f"{len(measured) - len(differ)} of {len(measured)} files of {card.name} in {precision} as recorded")
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
