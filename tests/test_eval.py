"""`codec eval`: metrics, the BD-rate glue, the report files, the cache, and its one-line errors."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
from PIL import Image

from codec import baselines, report
from codec.errors import CodecError
from codec.evaluate import measure_coded
from codec.metrics import bits_per_pixel, psnr
from tests.helpers import assert_one_line_error, image_folder, natural_image, run

SWEEP = {"jpeg420": [20, 60], "webp": [30, 70]}


@pytest.fixture
def small_images(tmp_path):
    return image_folder(tmp_path / "images", 64, 48, prefix="im")


def test_psnr_by_hand():
    reference = np.zeros((2, 2, 3), np.uint8)
    decoded = reference.copy()
    decoded[0, 0, 0] = 10  # MSE = 100 / 12
    value = psnr(Image.fromarray(reference), Image.fromarray(decoded))
    assert value == pytest.approx(10 * math.log10(255**2 * 12 / 100))
    assert psnr(Image.fromarray(reference), Image.fromarray(reference)) == math.inf


def test_bpp_counts_every_byte_of_the_file():
    image = natural_image(64, 48)
    data = baselines.encode(image, "webp", 50)
    assert data[:4] == b"RIFF"  # the whole container, header included
    assert bits_per_pixel(len(data), image) == len(data) * 8 / (64 * 48)
    row = measure_coded(image, lambda im: baselines.encode(im, "webp", 50), baselines.decode)
    assert row["bytes"] == len(data) and row["bpp"] == pytest.approx(len(data) * 8 / (64 * 48))


@pytest.mark.parametrize("codec", sorted(baselines.BASELINES))
def test_every_baseline_round_trips(codec):
    image = natural_image(64, 48)
    setting = baselines.BASELINES[codec].settings[-1]
    decoded = baselines.decode(baselines.encode(image, codec, setting))
    assert decoded.size == image.size and psnr(image, decoded) > 25


def test_parse_baselines():
    assert baselines.parse_baselines("jpeg, webp") == ["jpeg420", "jpeg444", "webp"]
    assert baselines.parse_baselines("none") == baselines.parse_baselines("") == []
    with pytest.raises(CodecError, match="unknown baseline 'png'"):
        baselines.parse_baselines("avif,png")


def curve(rates, psnrs):
    return [{"bpp": r, "psnr": p} for r, p in zip(rates, psnrs)]


def test_bd_rate_glue():
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    psnrs = [26.0, 29.0, 32.0, 35.0, 38.0]
    anchor = curve(rates, psnrs)
    assert report.bd_rate(anchor, anchor, "psnr") == pytest.approx(0, abs=1e-9)
    assert report.bd_rate(anchor, curve([r * 0.5 for r in rates], psnrs), "psnr") == pytest.approx(-50, abs=1e-6)
    assert report.bd_rate(anchor, curve(rates[::-1], psnrs[::-1]), "psnr") == pytest.approx(0, abs=1e-9)  # any order
    assert report.bd_rate(anchor, curve([1, 2], [50, 51]), "psnr") is None  # no overlap
    assert report.bd_rate(anchor, curve([0.5], [33]), "psnr") is None  # one point
    header, rows = report.bd_table({"a": anchor, "b": curve([r * 2 for r in rates], psnrs)}, "psnr")
    assert header == ["codec \\ anchor", "a", "b"]
    assert rows == [["a", "-", "-50.0 %"], ["b", "+100.0 %", "-"]]


def test_report_files_and_cache(tiny_model, small_images, tmp_path, monkeypatch):
    out = tmp_path / "out"
    tasks = report.plan(small_images, report.select_models("tiny"), ["jpeg420", "webp"], settings=SWEEP)
    assert len(tasks) == 3 * (1 + 2 + 2)
    rows = report.run(tasks, out / "cache", jobs=1)
    curves = report.curves(rows)
    written = report.write_outputs(out, rows, curves, "test images")
    assert [p.name for p in written] == ["rows.csv", "curves.json", "bd-rate.md", "rd.png"]

    with open(out / "rows.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(report.ROW_FIELDS) and len(table) == 15
    coded = [r for r in table if r["codec"] == "jpeg420" and r["setting"] == "60" and r["image"] == "im1.png"]
    image = Image.open(small_images / "im1.png")
    assert int(coded[0]["bytes"]) == len(baselines.encode(image, "jpeg420", 60))
    assert coded[0]["ms_ssim"] == ""  # 64x48 is too small for MS-SSIM's five scales

    saved = json.loads((out / "curves.json").read_text())
    assert list(saved) == ["lic", "jpeg420", "webp"]
    assert [p["setting"] for p in saved["webp"]] == [30, 70] and saved["webp"][0]["images"] == 3
    assert saved["lic"][0]["setting"] == "tiny"
    assert "## PSNR-RGB" in (out / "bd-rate.md").read_text()
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def fail(*args):
        raise AssertionError("measured again instead of read from the cache")

    monkeypatch.setattr(report, "measure_baseline", fail)
    monkeypatch.setattr(report, "_measure_model", fail)
    steps = []
    assert report.run(tasks, out / "cache", jobs=2, advance=lambda: steps.append(1)) == rows
    assert len(steps) == len(tasks)


def test_changed_image_or_model_is_measured_again(tiny_model, small_images):
    from codec.registry import save_model, user_dir
    from tests.helpers import SMALL, small_model

    before = report.plan(small_images, report.select_models("tiny"), ["jpeg420"], settings=SWEEP)
    natural_image(64, 48, seed=9).save(small_images / "im2.png")
    save_model(small_model(seed=1), user_dir(), name="tiny", arch="mean-scale-hyperprior",
               config={**SMALL, "hyper_attention": "none"}, lmbda=0.01, metric="mse")
    after = report.plan(small_images, report.select_models("tiny"), ["jpeg420"], settings=SWEEP)
    changed = {(t.codec, t.setting, t.image) for t in set(after) - set(before)}
    assert changed == {("lic", "tiny", f"im{i}.png") for i in range(3)} | {("jpeg420", q, "im2.png") for q in (20, 60)}


def test_interrupted_run_leaves_whole_cache_files_and_resumes(small_images, tmp_path):
    tasks = report.plan(small_images, [], ["jpeg420", "webp"], settings=SWEEP)
    cache = tmp_path / "cache"
    steps = []

    def interrupt():
        steps.append(1)
        if len(steps) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.run(tasks, cache, jobs=1, advance=interrupt)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert len(files) == 5 and all(not p.name.startswith(".") for p in files)
    assert all(json.loads(p.read_text())["bpp"] > 0 for p in files)
    steps.clear()
    assert len(report.run(tasks, cache, jobs=1, advance=lambda: steps.append(1))) == len(tasks) == len(steps)


def transparent_image(folder):
    image = natural_image(64, 48).convert("RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))
    image.save(folder / "alpha.png")


def test_cli_eval_with_worker_processes(tiny_model, small_images, tmp_path):
    transparent_image(small_images)  # noted once, not once per setting nor as a worker's raw warning
    result = run("eval", small_images, "--models", "tiny", "--baselines", "jpeg420", "--out", tmp_path / "out", "--jobs", 2)
    assert result.exit_code == 0, result.output
    assert "BD-rate (PSNR-RGB)" in result.stdout and "jpeg420" in result.stdout
    assert len(list((tmp_path / "out" / "cache" / "jpeg420").iterdir())) == 4 * len(baselines.BASELINES["jpeg420"].settings)
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"note: {small_images / 'alpha.png'}: transparency flattened onto white (the codec stores no alpha)"]


def test_cli_eval_keeps_a_report_without_force(small_images, tmp_path, monkeypatch):
    monkeypatch.setitem(baselines.BASELINES, "jpeg420", dataclasses.replace(baselines.BASELINES["jpeg420"], settings=(20, 60)))
    transparent_image(small_images)
    out = tmp_path / "out"
    command = ("eval", small_images, "--models", "none", "--baselines", "jpeg420", "-o", out, "--jobs", 1)
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("note:") == 1 and "transparency flattened" in result.stderr
    assert_one_line_error(run(*command), "already holds a report (use --force")
    for name in report.REPORT_FILES:
        (out / name).unlink()
    assert run(*command).exit_code == 0  # its cache alone, as an interrupted run leaves it, resumes
    assert run(*command, "--force").exit_code == 0


def test_published_curves_are_drawn_on_kodak_only(tmp_path, small_images, monkeypatch):
    kodak = tmp_path / "kodak"
    kodak.mkdir()
    for i in range(1, 25):
        natural_image(8, 8).save(kodak / f"kodim{i:02d}.png")
    assert report.is_kodak(kodak) and not report.is_kodak(small_images)
    curves = {"jpeg420": [{"bpp": 0.5, "psnr": 30.0, "ms_ssim_db": None}, {"bpp": 1.0, "psnr": 33.0, "ms_ssim_db": None}]}
    loaded = []
    monkeypatch.setattr(report, "load_published", lambda: loaded.append(1) or {"curves": {}})
    report.plot(curves, "not Kodak")
    assert not loaded
    report.plot(curves, "Kodak", kodak=True)
    assert loaded


def test_cli_eval_errors(tiny_model, small_images, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(run("eval", tmp_path / "nowhere", "--models", "none", "--out", out), "no such dataset folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("eval", tmp_path / "empty", "--models", "none", "--out", out), "no images found")
    assert_one_line_error(run("eval", small_images, "--models", "nope", "--out", out), "unknown model 'nope'")
    assert_one_line_error(run("eval", small_images, "--baselines", "png", "--out", out), "unknown baseline 'png'")
    assert_one_line_error(run("eval", small_images, "--jobs", 0, "--out", out), "--jobs must be at least 1")
    assert_one_line_error(run("eval", small_images, "--models", "none", "--baselines", "none", "--out", out), "nothing to evaluate")
    assert not out.exists()


def test_a_variable_rate_model_is_its_own_curve(tiny_model, tiny_variable_model, small_images, tmp_path, monkeypatch):
    """One point per quality of report.QUALITIES, beside the one-rate models' curve."""
    monkeypatch.setattr(report, "QUALITIES", (0, 50, 100))
    tasks = report.plan(small_images, report.select_models("tiny,tinyvr"), [])
    curves = report.curves(report.run(tasks, tmp_path / "cache", jobs=1))
    assert [p["setting"] for p in curves["lic"]] == ["tiny"]
    assert sorted(p["setting"] for p in curves["tinyvr"]) == [0, 50, 100]
    rates = [p["bpp"] for p in sorted(curves["tinyvr"], key=lambda p: p["setting"])]
    assert rates == sorted(rates) and rates[0] < rates[-1]
    report.write_outputs(tmp_path / "out", [], curves, "test")  # the plot labels both curves


def test_the_effort_is_part_of_a_models_point(tiny_variable_model, small_images, tmp_path, monkeypatch):
    """eval codes at the effort asked (compress's default otherwise); each effort its own cache entry."""
    from codec.models import refine

    monkeypatch.setattr(report, "QUALITIES", (50,))
    cards = report.select_models("tinyvr")
    default, plain, searched = (report.plan(small_images, cards, [], effort=e) for e in (None, 0, 3))
    assert {t.effort for t in default} == {refine.DEFAULT_EFFORT} and {t.effort for t in searched} == {3}
    assert not {t.key for t in searched} & {t.key for t in plain}
    with pytest.raises(CodecError, match="effort must be an integer from 0 to 9"):
        report.plan(small_images, cards, [], effort=10)


def test_eval_goes_on_past_a_bad_image(small_images, tmp_path, monkeypatch):
    monkeypatch.setitem(baselines.BASELINES, "jpeg420", dataclasses.replace(baselines.BASELINES["jpeg420"], settings=(60,)))
    (small_images / "broken.png").write_bytes(b"not a png")
    (small_images / ".hidden.png").write_bytes(b"")  # left out, as compress leaves it out
    out = tmp_path / "out"
    result = run("eval", small_images, "--models", "none", "--baselines", "jpeg420", "-o", out, "--jobs", 1)
    assert_one_line_error(result, f"{small_images / 'broken.png'}: not an image file")
    with open(out / "rows.csv") as f:
        assert sorted(row["image"] for row in csv.DictReader(f)) == ["im0.png", "im1.png", "im2.png"]
    (small_images / "im0.png").write_bytes(b"")
    (small_images / "im1.png").write_bytes(b"")
    (small_images / "im2.png").write_bytes(b"")
    result = run("eval", small_images, "--models", "none", "--baselines", "jpeg420", "-o", out, "--force")
    assert result.exit_code == 1 and f"{small_images}: none of its images could be read" in result.stderr


def test_curves_pool_the_bits_over_all_pixels_and_count_the_ms_ssim_images():
    """A 1x1 image's 400 bpp weighs as its one pixel against a 200x200 image's 40,000."""
    rows = [{"codec": "x", "setting": 1, "bytes": 50, "bpp": 400.0, "psnr": 20.0, "ms_ssim": None, "ms_ssim_db": None,
             "encode_s": 0.1, "decode_s": 0.1},
            {"codec": "x", "setting": 1, "bytes": 2500, "bpp": 0.5, "psnr": 30.0, "ms_ssim": 0.9, "ms_ssim_db": 10.0,
             "encode_s": 0.3, "decode_s": 0.3}]
    (point,) = report.curves(rows)["x"]
    assert point["bpp"] == pytest.approx(8 * 2550 / 40001)
    assert point["psnr"] == 25.0 and point["images"] == 2
    assert point["ms_ssim"] == 0.9 and point["ms_ssim_images"] == 1
    assert "all images' pixels" in report.bd_markdown(report.curves(rows), "t")
