"""`codec eval`: our models and the Pillow baselines on a folder of images, through real files.

Every (codec, setting, image) result is cached as a small JSON file under OUT/cache/, named by a hash
of all it depends on (the model's sha256, or the baseline's encoder options and Pillow's version, and
the image's sha256), so an interrupted run resumes where it stopped and a rerun computes only what
changed. Baselines run in worker processes (`jobs`); our models run in the main process before them,
so that their timings do not share the cores with other work.

Outputs: rows.csv (one row per image), curves.json (one point per setting: bpp over all the images'
pixels, PSNR and MS-SSIM means over images), bd-rate.md, rd.png (with CompressAI's published Kodak
curves when the folder is Kodak). An image that cannot be read is left out and named (see
readable_images), as `codec compress` goes on past a bad file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import codec.data

from codec import baselines as pillow
from codec.api import check_effort, compress, decompress
from codec.errors import CodecError, ConversionWarning
from codec.evaluate import measure_baseline, measure_coded, pooled_bpp
from codec.fetch import KODAK_SHA256
from codec.fileio import image_files, write_bytes_atomic
from codec.image import open_image
from codec.parallel import in_processes
from codec.metrics import ms_ssim_db
from codec.models import refine
from codec.registry import ModelCard, default_card, get_card, load_model

MODEL_CODEC = "lic"  # the curve of our one-rate models, one point per model; a variable-rate one has its own
QUALITIES = tuple(range(0, 101, 10))  # a variable-rate model's points
PUBLISHED = Path(codec.data.__file__).parent / "published" / "compressai-kodak.json"
MEASURES = ("bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s")
ROW_FIELDS = ("codec", "setting", "image", "pixels", "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s")
BD_METRICS = {"psnr": "PSNR-RGB", "ms_ssim_db": "MS-SSIM (dB)"}
REPORT_FILES = ("rows.csv", "curves.json", "bd-rate.md", "rd.png")
AVERAGES = ("bpp: all files' bits over all images' pixels (a large image weighs as its pixels); PSNR, MS-SSIM and times: "
            "means over the images (MS-SSIM over those of at least 161 pixels a side, counted apart)")


@dataclass(frozen=True)
class Task:
    codec: str  # a baseline, MODEL_CODEC, or a variable-rate model's name
    setting: str | int  # a model name for MODEL_CODEC, the quality for a variable-rate model, the swept option's value for a baseline
    image: str  # the image's path relative to the dataset folder
    path: Path
    key: str  # the cache key: a hash of everything the result depends on
    effort: int | None = None  # a variable-rate model's encoder effort


def select_models(text: str | None) -> list[ModelCard]:
    """None: the default model; "" or "none": no model; otherwise the comma-separated names."""
    if text is None:
        return [default_card()]
    names = [name.strip() for name in text.split(",") if name.strip()]
    return [] if names in ([], ["none"]) else [get_card(name) for name in names]


def is_kodak(folder: Path) -> bool:
    """Whether a dataset folder is Kodak (its 24 files by name), whose published curves rd.png then shows."""
    return sorted(path.relative_to(folder).as_posix() for path in image_files(folder)) == sorted(KODAK_SHA256)


def readable_images(folder: Path) -> tuple[list[Path], list[str]]:
    """The images of a dataset folder that open, and a one-line message for each that does not."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CodecError(f"{folder}: no such dataset folder (`codec fetch kodak` downloads Kodak)")
    readable, problems = [], []
    for path in image_files(folder):
        try:
            open_image(path)
            readable.append(path)
        except CodecError as error:
            problems.append(str(error))
    return readable, problems


def plan(folder: Path, models: list[ModelCard], codecs: list[str], settings: dict[str, list[int]] | None = None,
         effort: int | None = None, images: list[Path] | None = None) -> list[Task]:
    """Every (codec, setting, image) to measure; `settings` replaces a baseline's sweep (for tests);
    `effort`: the variable-rate models' encoder effort (None: compress's default); `images`: the
    folder's to measure (default: all)."""
    if not models and not codecs:
        raise CodecError("nothing to evaluate: no models and no baselines")
    folder = Path(folder)
    if not folder.is_dir():
        raise CodecError(f"{folder}: no such dataset folder (`codec fetch kodak` downloads Kodak)")
    effort = check_effort(refine.DEFAULT_EFFORT if effort is None else effort)
    images = [(path.relative_to(folder).as_posix(), path) for path in (image_files(folder) if images is None else images)]
    hashes = {path: hashlib.sha256(path.read_bytes()).hexdigest() for _, path in images}
    points = []
    for card in models:
        if card.variable_rate:
            points += [(card.name, quality, f"model sha256 {card.sha256} effort {effort}") for quality in QUALITIES]
        else:
            points.append((MODEL_CODEC, card.name, f"model sha256 {card.sha256}"))
    for codec in codecs:
        baseline = pillow.BASELINES[codec]
        points += [(codec, s, baseline.signature(s)) for s in (settings or {}).get(codec, baseline.settings)]
    tasks = []
    for codec, setting, signature in points:
        for name, path in images:
            key = hashlib.sha256(json.dumps([codec, setting, signature, hashes[path]]).encode()).hexdigest()[:32]
            tasks.append(Task(codec, setting, name, path, key, effort if is_ours(codec) and codec != MODEL_CODEC else None))
    return tasks


def run(tasks: list[Task], cache: Path, jobs: int = 2, advance: Callable[[], None] = lambda: None) -> list[dict]:
    """The rows of all tasks, from the cache or measured (and then cached), in the order of `tasks`."""
    if jobs < 1:
        raise CodecError(f"--jobs must be at least 1 (got {jobs})")
    measured = {}
    for task in tasks:
        measured[task] = _read_cache(cache, task)
        if measured[task] is not None:
            advance()

    def done(task: Task, result: dict, notes: tuple[str, ...] = ()) -> None:
        for note in notes:  # a worker's, raised again here where the command reports them
            warnings.warn(note, ConversionWarning)
        write_bytes_atomic(_cache_path(cache, task), (json.dumps(result) + "\n").encode())
        measured[task] = result
        advance()

    todo = [task for task in tasks if measured[task] is None]
    for task in (t for t in todo if is_ours(t.codec)):
        done(task, _measure_model(task))
    baseline_tasks = {(task.codec, task.setting, task.path): task for task in todo if not is_ours(task.codec)}
    if jobs == 1 or len(baseline_tasks) < 2:
        outcomes = ((job, measure_baseline(job)) for job in baseline_tasks)
    else:
        outcomes = in_processes(measure_baseline, baseline_tasks, jobs)
    for job, outcome in outcomes:
        done(baseline_tasks[job], *outcome)
    return [_row(task, measured[task]) for task in tasks]


def is_ours(codec: str) -> bool:
    return codec not in pillow.BASELINES


def _measure_model(task: Task) -> dict:
    name, quality = (task.setting, None) if task.codec == MODEL_CODEC else (task.codec, task.setting)
    load_model(get_card(name))  # loading the weights is not part of the encode time
    return measure_coded(open_image(task.path), lambda image: compress(image, quality=quality, model=name, effort=task.effort),
                         decompress)


def _cache_path(cache: Path, task: Task) -> Path:
    return Path(cache) / task.codec / f"{task.key}.json"


def _read_cache(cache: Path, task: Task) -> dict | None:
    try:
        result = json.loads(_cache_path(cache, task).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and set(MEASURES) <= set(result) else None


def _row(task: Task, result: dict) -> dict:
    score = result["ms_ssim"]
    values = {"codec": task.codec, "setting": task.setting, "image": task.image, **result,
              "pixels": round(result["bytes"] * 8 / result["bpp"]), "ms_ssim_db": None if score is None else ms_ssim_db(score)}
    return {field: values[field] for field in ROW_FIELDS}


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Per codec, one point per setting, ordered by bpp (AVERAGES): the bits of all files over the
    pixels of all images, and the means over images of the rest.

    MS-SSIM and its dB value are means over the images large enough to have one (per-image dB, then
    the mean), `ms_ssim_images` of them; None where no image was.
    """
    groups: dict[str, dict] = {}
    for row in rows:
        groups.setdefault(row["codec"], {}).setdefault(row["setting"], []).append(row)
    result = {}
    for codec, settings in groups.items():
        points = []
        for setting, group in settings.items():
            point = {"setting": setting, "images": len(group), "bpp": pooled_bpp(group),
                     "ms_ssim_images": sum(row["ms_ssim"] is not None for row in group)}
            for field in ("psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"):
                values = [row[field] for row in group if row[field] is not None]
                point[field] = float(np.mean(values)) if values else None
            points.append(point)
        result[codec] = sorted(points, key=lambda p: p["bpp"])
    return result


def bd_rate(anchor: list[dict], test: list[dict], metric: str) -> float | None:
    """BD-rate in % of `test` against `anchor` on `metric` (negative: fewer bits for the same quality),
    by the bjontegaard package with PCHIP; None where it is undefined (too few points, no overlap,
    a curve with a single point left)."""
    import matplotlib

    matplotlib.use("Agg")  # bjontegaard imports pyplot
    import bjontegaard as bd

    def points(curve):
        """The curve's points that no other beats: a point with more bits and no higher quality than
        one before it (a variable-rate model's flat top) is one nobody would pick, and would make the
        curve non-monotonic, which BD-rate cannot take."""
        kept = []
        for rate, value in sorted((p["bpp"], p[metric]) for p in curve if p[metric] is not None and math.isfinite(p[metric])):
            if not kept or value > kept[-1][1]:
                kept.append((rate, value))
        return [list(values) for values in zip(*kept)] or [[], []]

    (rate_anchor, dist_anchor), (rate_test, dist_test) = points(anchor), points(test)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # low overlap is reported as a warning; the value stands
            value = bd.bd_rate(rate_anchor, dist_anchor, rate_test, dist_test, method="pchip",
                               require_matching_points=False)
    except (ValueError, AssertionError, IndexError):
        return None
    return float(value) if math.isfinite(value) else None


def bd_table(curves: dict[str, list[dict]], metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the BD-rate of every codec (row) against every other (column, the anchor)."""
    names = list(curves)
    rows = []
    for test in names:
        cells = [test]
        for anchor in names:
            value = None if test == anchor else bd_rate(curves[anchor], curves[test], metric)
            cells.append("-" if test == anchor else "n/a" if value is None else f"{value:+.1f} %")
        rows.append(cells)
    return ["codec \\ anchor", *names], rows


def load_published() -> dict:
    """CompressAI's published Kodak curves (data/published/compressai-kodak.json)."""
    return json.loads(PUBLISHED.read_text())


def write_outputs(out: Path, rows: list[dict], curves: dict[str, list[dict]], title: str, kodak: bool = False) -> list[Path]:
    """rows.csv, curves.json, bd-rate.md and rd.png in `out` (REPORT_FILES); returns their paths.
    `kodak`: the images are Kodak's, so the plot shows CompressAI's published curves beside them."""
    out = Path(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files = dict(zip(REPORT_FILES, (
        buffer.getvalue().encode(),
        (json.dumps(curves, indent=2) + "\n").encode(),
        bd_markdown(curves, title).encode(),
        plot(curves, title, kodak),
    )))
    for name, data in files.items():
        write_bytes_atomic(out / name, data)
    return [out / name for name in files]


def bd_markdown(curves: dict[str, list[dict]], title: str) -> str:
    lines = [f"# BD-rate, {title}", "",
             "Each row against each column as the anchor (bjontegaard, PCHIP); negative: fewer bits for "
             "the same quality, averaged over the quality range both curves cover, on the points of each curve that no "
             "other point of it beats (more bits for no more quality are left out). n/a: the curves do not overlap or "
             f"have fewer than two points. The points' {AVERAGES}.", ""]
    for metric, label in BD_METRICS.items():
        header, rows = bd_table(curves, metric)
        lines += [f"## {label}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows] + [""]
    return "\n".join(lines)


def plot(curves: dict[str, list[dict]], title: str, kodak: bool = False) -> bytes:
    """Two panels, PSNR and MS-SSIM (dB) against bpp, as PNG bytes: our models bold with markers,
    baselines thin, and on Kodak CompressAI's published curves dashed (measured on other images, they
    would compare nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    published = load_published()["curves"] if kodak else {}
    ours = [codec for codec in curves if is_ours(codec)]
    colours = dict(zip([*pillow.BASELINES, *ours], plt.get_cmap("tab10").colors))  # baselines: the same in every plot
    figure, axes = plt.subplots(1, 2, figsize=(14, 6), layout="constrained")
    for axis, metric in zip(axes, ("psnr", "ms_ssim_db")):
        seen = []  # the values at 0-2 bpp, which set the vertical range
        for codec, points in curves.items():
            kept = [(p["bpp"], p[metric]) for p in points if p[metric] is not None and math.isfinite(p[metric])]
            if not kept:
                continue
            bpp, values = zip(*kept)
            seen += [v for b, v in kept if b <= 2]
            mine = is_ours(codec)
            if codec == MODEL_CODEC:
                label = f"ours ({len(points)} model{'s' if len(points) > 1 else ''})"
            else:
                label = f"ours, {codec} (quality {points[0]['setting']}-{points[-1]['setting']})" if mine else pillow.BASELINES[codec].label
            axis.plot(bpp, values, "-o", color=colours[codec], label=label, linewidth=2.2 if mine else 1.0,
                      markersize=6 if mine else 2.5, zorder=3 if mine else 2)
        for (name, curve), colour, dashes in zip(published.items(), ("0.1", "0.5"), ((6, 2), (2.5, 1.5))):
            values = curve["psnr"] if metric == "psnr" else [ms_ssim_db(v) for v in curve["ms_ssim"]]
            seen += [v for b, v in zip(curve["bpp"], values) if b <= 2]
            axis.plot(curve["bpp"], values, "--", dashes=dashes, color=colour, linewidth=1.5,
                      label=f"CompressAI {name}, Kodak (published, not measured here)")
        axis.set_xlim(0, 2.05)
        if seen:  # none: no image was large enough for MS-SSIM
            axis.set_ylim(math.floor(min(seen)) - 1, math.ceil(max(seen)) + 1)
        axis.set_xlabel("bits per pixel (whole file)")
        axis.set_ylabel("PSNR-RGB (dB)" if metric == "psnr" else "MS-SSIM (dB), −10 log10(1 − MS-SSIM)")
        axis.grid(True, alpha=0.35)
    axes[0].set_title(f"PSNR, {title}")
    axes[1].set_title(f"MS-SSIM, {title}")
    (axes[1] if axes[1].lines else axes[0]).legend(loc="lower right", fontsize=8.5)  # the first: no MS-SSIM values
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()
