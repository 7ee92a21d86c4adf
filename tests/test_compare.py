"""`codec compare` and `codec info`: the baselines' size search, the page and the sheet, the errors,
and the page in a real browser (headless Chromium, skipped where it is not installed)."""

import base64
import io
import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import codec
from codec import baselines as pillow
from codec.bitstream import Bitstream
from codec.compare import Comparison, code_baseline, code_ours, compare, difference, heat_map, html_page, sheet
from codec.errors import CodecError
from tests.helpers import assert_one_line_error, natural_image, run

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def counting_clock():
    """A clock that advances one second a reading: each timed step then takes exactly 1 s."""
    return itertools.count().__next__


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    natural_image(64, 48).save(path)
    return path


@pytest.mark.parametrize("codec", ["jpeg420", "webp", "avif", "jpeg2000"])
def test_each_baseline_lands_at_or_just_under_the_budget(codec):
    image = natural_image(64, 48)
    budget = len(pillow.encode(image, "jpeg420", 60))
    coded = code_baseline(image, codec, budget)
    assert coded.fits and coded.size <= budget
    if pillow.BASELINES[codec].swept == "quality":  # the next quality up is over it
        quality = int(coded.setting.lstrip("q"))
        assert quality == 100 or len(pillow.encode(image, codec, quality + 1)) > budget
    else:
        assert coded.size > 0.9 * budget
    assert coded.decoded.size == image.size and coded.psnr > 20


def test_a_baseline_that_cannot_go_so_low_shows_its_smallest_file():
    image = natural_image(64, 48)
    coded = code_baseline(image, "jpeg420", 10)
    assert not coded.fits and coded.setting == "q0" and coded.size == len(pillow.encode(image, "jpeg420", 0)) > 10


def test_our_file_within_a_size_and_the_times_from_the_clock(tiny_variable_model):
    image = natural_image(64, 48)
    smallest = len(codec.compress(image, quality=0, model="tinyvr"))
    ours = code_ours(image, size=smallest, model="tinyvr", clock=counting_clock())  # bytes <= size: it fits exactly
    assert (ours.size, ours.setting, ours.encode_s, ours.decode_s) == (smallest, "q0", 1, 1)
    with pytest.raises(CodecError, match=f"no quality of model tinyvr fits in {smallest - 1:,} bytes"):
        code_ours(image, size=smallest - 1, model="tinyvr")
    with pytest.raises(CodecError, match="at most one"):
        code_ours(image, quality=10, size=2000, model="tinyvr")


def test_difference_maps():
    image = natural_image(32, 24)
    assert not difference(image, image).any()
    black = np.asarray(heat_map(difference(image, image), 10.0))
    assert (black == black[0, 0]).all() and black[0, 0].sum() < 10  # inferno starts near black
    grey, lighter = Image.new("RGB", (8, 6), (100, 100, 100)), Image.new("RGB", (8, 6), (100, 130, 100))
    assert np.allclose(difference(grey, lighter), np.sqrt(30**2 / 3))
    bright = np.asarray(heat_map(difference(grey, lighter), 10.0))
    assert (bright == bright[0, 0]).all() and bright[0, 0].sum() > 600  # over the scale: the colormap's brightest
    middle = np.asarray(heat_map(difference(grey, lighter), 2 * float(np.sqrt(300))))
    assert 100 < middle[0, 0].sum() < 500


class Sources(HTMLParser):
    """Every URL-bearing attribute of a page, and its tags."""

    def __init__(self):
        super().__init__()
        self.urls, self.tags = [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [value for name, value in attrs if name in ("src", "href", "srcset", "action", "poster", "data")]


def embedded(page: str) -> dict:
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))


def test_the_page_embeds_everything(tiny_variable_model, photo, tmp_path):
    comparison = compare(Image.open(photo).convert("RGB"), "photo <b>{table}.png", quality=50, model="tinyvr",
                         baselines=("jpeg420", "webp"))
    page = html_page(comparison)
    parser = Sources()
    parser.feed(page)
    assert parser.urls and all(url.startswith("data:") for url in parser.urls)
    assert not parser.tags & {"link", "iframe", "object", "embed", "base"}
    assert "url(" not in page and "@import" not in page and "photo <b>" not in page
    assert page.count("<thead>") == 1 and "photo &lt;b&gt;{table}.png" in page
    data = embedded(page)
    assert [c["key"] for c in data["codecs"]] == ["original", "lic", "jpeg420", "webp"]
    for codec, coded in zip(data["codecs"][1:], comparison.coded):  # the decoded pixels, exactly
        image = Image.open(io.BytesIO(base64.b64decode(codec["image"].split(",", 1)[1])))
        assert np.array_equal(np.asarray(image), np.asarray(coded.decoded))


def test_the_sheet_has_a_column_per_codec_and_the_crops(tiny_variable_model):
    image = natural_image(200, 100)
    comparison = compare(image, "x.png", quality=50, model="tinyvr", baselines=("jpeg420",))
    board = sheet(comparison, cell=128, crop=32)
    assert board.width == 10 + 3 * (128 + 10)
    # the first crop is where the codecs' differences from the original add up most
    total = sum(difference(image, coded.decoded).astype(np.float64) for coded in comparison.coded)
    sums = {(x, y): total[y:y + 32, x:x + 32].sum() for y in range(0, 69) for x in range(0, 169)}
    x, y = max(sums, key=sums.get)
    crop_top = 30 + 6 * 17 + 10 + 2 * (64 + 10)
    ours = np.asarray(board)[crop_top:crop_top + 128:4, 10 + 138:10 + 138 + 128:4]
    assert np.array_equal(ours, np.asarray(comparison.coded[0].decoded)[y:y + 32, x:x + 32])


def test_cli_compare_outputs(tiny_variable_model, photo, tmp_path):
    page = tmp_path / "page.html"
    result = run("compare", photo, "--model", "tinyvr", "-q", "40", "--baselines", "jpeg420", "-o", page)
    assert result.exit_code == 0, result.output
    assert "lic tinyvr q40 " in result.stdout and "JPEG 4:2:0 q" in result.stdout and f"wrote {page}" in result.stdout
    before = page.read_bytes()
    assert_one_line_error(run("compare", photo, "--model", "tinyvr", "--baselines", "jpeg420", "-o", page), "already exists")
    assert page.read_bytes() == before
    result = run("compare", photo, "--model", "tinyvr", "-q", "41", "--baselines", "jpeg420", "-o", page, "--force")
    assert result.exit_code == 0 and page.read_bytes() != before
    # --png alone writes the sheet instead of the page; the default page goes beside the image
    result = run("compare", photo, "--model", "tinyvr", "--baselines", "jpeg420", "--png", tmp_path / "sheet.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "sheet.png").format == "PNG" and not (tmp_path / "photo.compare.html").exists()
    assert run("compare", photo, "--model", "tinyvr", "--baselines", "jpeg420").exit_code == 0
    assert (tmp_path / "photo.compare.html").exists()


@pytest.mark.parametrize("args, fragment", [
    (["-q", "10", "--size", "900"], "at most one of --quality, --target-bpp and --size"),
    (["--size", "0"], "--size must be a positive number of bytes"),
    (["--size", "20"], "no quality of model tinyvr fits in 20 bytes"),
    (["-q", "101"], "quality must be from 0 to 100"),
    (["--baselines", "gif"], "unknown baseline 'gif'"),
    (["--png", "sheet.jpg"], "--png writes a PNG file"),
    (["--model", "nope"], "unknown model 'nope'"),
])
def test_cli_compare_errors_leave_nothing(tiny_variable_model, photo, tmp_path, args, fragment):
    before = sorted(tmp_path.iterdir())
    assert_one_line_error(run("compare", photo, "--model", "tinyvr", "--baselines", "jpeg420", *args), fragment)
    assert sorted(tmp_path.iterdir()) == before


def test_cli_compare_bad_inputs(tiny_variable_model, photo, tmp_path):
    assert_one_line_error(run("compare", tmp_path / "nope.png", "--model", "tinyvr"), "no such file")
    (tmp_path / "notes.txt").write_text("not an image")
    assert_one_line_error(run("compare", tmp_path / "notes.txt", "--model", "tinyvr"), "not an image file")
    assert_one_line_error(run("compare", photo, "-o", photo), "would overwrite its own input")
    assert_one_line_error(run("compare", photo, "-o", tmp_path / "x.png", "--png", tmp_path / "x.png"), "same file")
    assert_one_line_error(run("compare", photo, "--png", photo / "sheet.png"), f"{photo} is not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec-home", "notes.txt", "photo.png"]


def test_cli_compare_writes_all_its_outputs_or_none(tiny_variable_model, photo, tmp_path, monkeypatch):
    import codec.cli.main as cli

    def failing(path, write):
        if Path(path).suffix == ".png":
            raise OSError(28, "No space left on device", str(path))
        original(path, write)

    original = cli.atomic_write
    monkeypatch.setattr(cli, "atomic_write", failing)
    result = run("compare", photo, "--model", "tinyvr", "--baselines", "jpeg420", "-o", tmp_path / "page.html",
                 "--png", tmp_path / "sheet.png")
    assert_one_line_error(result, "sheet.png: No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec-home", "photo.png"]


def test_cli_info(tiny_variable_model, tiny_model, photo, tmp_path):
    data = codec.compress(photo, quality=37.5, model="tinyvr")
    (tmp_path / "a.lic").write_bytes(data)
    result = run("info", tmp_path / "a.lic")
    assert result.exit_code == 0, result.output
    stream = Bitstream.from_bytes(data)
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines()[1:])
    assert lines["format"] == "version 2" and lines["quality"] == "37.5" and lines["dimensions"] == "64x48 RGB"
    assert lines["model"].startswith("tinyvr (gained-mean-scale-hyperprior, installed")
    sizes = " + ".join(f"{len(s):,}" for s in stream.streams)
    overhead = len(data) - sum(map(len, stream.streams))
    assert lines["streams"] == f"2: {sizes} bytes; header and CRC {overhead:,} bytes"
    assert lines["size"].startswith(f"{len(data):,} bytes") and lines["metadata"].startswith("none")
    # a file of a model that is not installed: described all the same; a damaged file: one line, and the others still
    foreign = Bitstream("gone", b"\0" * 8, 5, 4, "L", (b"ab", b"c"), None).to_bytes()
    (tmp_path / "b.lic").write_bytes(foreign)
    (tmp_path / "c.lic").write_bytes(data[:-1])
    result = run("info", tmp_path / "c.lic", tmp_path / "b.lic")
    assert result.exit_code == 1 and "c.lic: truncated file" in result.stderr
    assert "gone (not installed here" in result.stdout and "none (a one-rate model)" in result.stdout
    assert "5x4 grayscale" in result.stdout


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Debian's headless Chromium, driven through its WebDriver (chromium-driver) by selenium."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Chromium is not installed (/usr/bin/chromium and /usr/bin/chromedriver, Debian's chromium and "
                    "chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=900,700", "--force-device-scale-factor=1",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def requests_of(driver, url: str) -> list[str]:
    """The URLs that the page at `url` asked for since the last call (Chromium's network log)."""
    events = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [e["params"]["request"]["url"] for e in events
            if e["method"] == "Network.requestWillBeSent" and e["params"].get("documentURL") == url]


def test_the_page_in_chromium(chromium, tiny_variable_model, tmp_path):
    from selenium.webdriver import ActionChains, Keys
    from selenium.webdriver.common.by import By

    photo, page = tmp_path / "photo.png", tmp_path / "page.html"
    natural_image(128, 96).save(photo)  # at 8:1, larger than the view: it pans
    assert run("compare", photo, "--model", "tinyvr", "-q", "30", "--baselines", "jpeg420", "-o", page).exit_code == 0
    url = page.as_uri()
    chromium.get(url)
    view = chromium.find_element(By.ID, "view")

    def shot() -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(view.screenshot_as_png)).convert("RGB"))

    def image_box() -> dict:
        return chromium.execute_script("const r = document.getElementById('left-image').getBoundingClientRect(), "
                                       "v = document.getElementById('view').getBoundingClientRect();"
                                       "return {x: r.left - v.left, y: r.top - v.top, width: r.width};")

    halves = shot()
    split = chromium.find_element(By.ID, "split")
    split.send_keys(Keys.END)  # the left codec (ours) over the whole view
    ours = shot()
    split.send_keys(Keys.HOME)  # the right one (JPEG)
    jpeg = shot()
    assert not np.array_equal(halves, ours) and not np.array_equal(halves, jpeg) and not np.array_equal(ours, jpeg)

    split.send_keys(Keys.END)
    chromium.find_element(By.CSS_SELECTOR, "[data-zoom='8']").click()
    box = image_box()
    assert box["width"] == 128 * 8
    left_image = chromium.find_element(By.ID, "left-image")
    assert left_image.value_of_css_property("image-rendering") == "pixelated"
    zoomed = shot()
    # pixel-exact: each image pixel is an 8x8 block of its decoded value (below the labels, left of the swipe line's handle)
    decoded = Image.open(io.BytesIO(base64.b64decode(embedded(page.read_text())["codecs"][1]["image"].split(",", 1)[1])))
    x, y = round(box["x"]), round(box["y"])
    expected = np.repeat(np.repeat(np.asarray(decoded.convert("RGB")), 8, 0), 8, 1)
    visible = zoomed[max(0, y):, max(0, x):][:expected.shape[0] - max(0, -y), :expected.shape[1] - max(0, -x)]
    expected = expected[max(0, -y):, max(0, -x):][:visible.shape[0], :visible.shape[1]]
    assert visible.shape[0] > 100 and np.array_equal(visible[40:, :-16], expected[40:, :-16])

    ActionChains(chromium).move_to_element_with_offset(view, 100, 80).click_and_hold().move_by_offset(-60, -40).release().perform()
    moved = image_box()
    assert (moved["x"], moved["y"]) == (box["x"] - 60, box["y"] - 40)  # panned
    assert not np.array_equal(shot(), zoomed)

    chromium.find_element(By.ID, "heat").click()
    assert not np.array_equal(shot(), zoomed)

    # nothing but the page and its data: URLs was asked for, and nothing was refused or failed
    asked = requests_of(chromium, url)
    assert url in asked and [u for u in asked if not u.startswith(("data:", "file:"))] == []
    assert [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"] == []

    # the same checks catch a page that reaches out
    leaky = tmp_path / "leaky.html"
    leaky.write_text(page.read_text().replace("<body>", '<body><img src="http://127.0.0.1:9/x.png">', 1))
    chromium.get(leaky.as_uri())
    refused = [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]
    assert [u for u in requests_of(chromium, leaky.as_uri()) if u.startswith("http")] or refused
