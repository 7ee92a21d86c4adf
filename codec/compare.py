"""`codec compare`: one image coded by this codec and by the classical ones at the same file size,
shown side by side, so that people can choose a codec by looking.

Our file is coded first (at a quality, or at the quality a size or bpp budget allows); then each
baseline's setting is searched by bisection for the largest file at or under ours. Every codec is
timed on one encode and one decode at its chosen setting, after an untimed round that loads our
model and pays each coder's first-call costs. The results go to a self-contained HTML page (the
decoded images, as PNG, and their difference maps, all inline: the page fetches nothing) or to a
PNG sheet with zoomed crops.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from codec import baselines as pillow
from codec.api import compress, compress_to_target, decompress
from codec.bitstream import Bitstream
from codec.errors import CodecError
from codec.metrics import bits_per_pixel, ms_ssim, ms_ssim_db, psnr
from codec.registry import default_card, get_card

OURS = "lic"  # the key of our codec on the page
HEAT_PERCENTILE = 99  # the difference maps' brightest colour: from this percentile of every codec's differences up
HEAT_COLORMAP = "inferno"


@dataclass(frozen=True)
class Coded:
    """One codec's result on the image."""

    key: str  # OURS or a baseline's name
    label: str
    setting: str  # as the codec's own options say it: "q32", or JPEG 2000's compression ratio "96.3:1"
    size: int  # bytes of the file
    decoded: Image.Image
    psnr: float
    ms_ssim: float | None  # None for images too small for its five scales
    encode_s: float
    decode_s: float
    fits: bool  # at or under our file's size (a baseline's smallest file may not be)


@dataclass(frozen=True)
class Comparison:
    name: str  # the image, as the page names it
    reference: Image.Image
    coded: tuple[Coded, ...]  # ours first


Clock = Callable[[], float]


def _timed(encode: Callable[[], bytes], decode: Callable[[bytes], Image.Image], clock: Clock) -> tuple[bytes, Image.Image, float, float]:
    """The file, its decoding and the seconds of each, timed on a second round: the first loads
    the model and pays each coder's first-call costs."""
    decode(encode())
    start = clock()
    data = encode()
    encoded = clock()
    decoded = decode(data)
    return data, decoded, encoded - start, clock() - encoded


def _result(key: str, label: str, setting: str, reference: Image.Image,
            timed: tuple[bytes, Image.Image, float, float], fits: bool = True) -> Coded:
    data, decoded, encode_s, decode_s = timed
    decoded = decoded.convert(reference.mode)
    return Coded(key, label, setting, len(data), decoded, psnr(reference, decoded), ms_ssim(reference, decoded),
                 encode_s, decode_s, fits)


def code_ours(image: Image.Image, quality: float | None = None, bpp: float | None = None, size: int | None = None,
              model: str | None = None, clock: Clock = time.perf_counter) -> Coded:
    """Our file at a quality (default: the model's), or at the highest quality within `bpp` or
    `size` bytes (compress_to_target's search); a budget that no quality meets is an error."""
    if sum(option is not None for option in (quality, bpp, size)) > 1:
        raise CodecError("give at most one of --quality, --target-bpp and --size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise CodecError(f"--size must be a positive number of bytes (got {size!r})")
        bpp = bits_per_pixel(size, image)
    card = get_card(model) if model is not None else default_card()
    if bpp is not None:
        result = compress_to_target(image, bpp=bpp, model=card.name, closest=True, metadata=False)
        if not result.met:
            wanted = f"{size:,} bytes" if size is not None else f"{bpp:g} bpp"
            raise CodecError(f"no quality of model {card.name} fits in {wanted} "
                             f"(the smallest, quality {result.quality:g}, makes {len(result.data):,} bytes, {result.bpp:.4f} bpp)")
        quality = result.quality
    # The pixels are compared: our file carries no metadata, as the baselines' files carry none.
    timed = _timed(lambda: compress(image, quality=quality, model=card.name, metadata=False), decompress, clock)
    hundredths = Bitstream.from_bytes(timed[0]).quality
    return _result(OURS, f"lic {card.name}", "one rate" if hundredths is None else f"q{hundredths / 100:g}", image, timed)


def code_baseline(image: Image.Image, name: str, budget: int, clock: Clock = time.perf_counter) -> Coded:
    """A baseline at the setting that makes its largest file within `budget` bytes, by bisection
    over its setting (sizes grow with it); at its smallest setting, marked as not fitting, when
    even that is larger."""
    baseline = pillow.BASELINES[name]
    if baseline.swept == "quality":
        low, high = 0, 100

        def setting_of(k: int) -> float:
            return k

        def described(k: int) -> str:
            return f"q{k}"
    else:  # JPEG 2000 takes a compression ratio: raw bytes / k aims at a file of about k bytes
        raw = image.width * image.height * len(image.getbands())
        low, high = 1, max(1, min(2 * budget, raw))

        def setting_of(k: int) -> float:
            return raw / k

        def described(k: int) -> str:
            return f"{raw / k:.1f}:1"

    sizes: dict[int, int] = {}

    def size_at(k: int) -> int:
        if k not in sizes:
            sizes[k] = len(pillow.encode(image, name, setting_of(k)))
        return sizes[k]

    fits = size_at(low) <= budget
    if fits:
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if size_at(middle) <= budget else (low, middle - 1)
    timed = _timed(lambda: pillow.encode(image, name, setting_of(low)), pillow.decode, clock)
    return _result(name, baseline.label, described(low), image, timed, fits)


def compare(image: Image.Image, name: str, quality: float | None = None, bpp: float | None = None, size: int | None = None,
            model: str | None = None, baselines: tuple[str, ...] = (), clock: Clock = time.perf_counter) -> Comparison:
    """Our file, then each baseline (names of codec.baselines.BASELINES) within its size."""
    ours = code_ours(image, quality, bpp, size, model, clock)
    return Comparison(name, image, (ours, *(code_baseline(image, codec, ours.size, clock) for codec in baselines)))


def difference(reference: Image.Image, decoded: Image.Image) -> np.ndarray:
    """Per pixel, the RMS over R, G and B of the decoded image's difference from the reference."""
    a, b = (np.asarray(image.convert("RGB"), dtype=np.float32) for image in (reference, decoded))
    return np.sqrt(np.mean(np.square(a - b), axis=-1))


def heat_scale(differences: list[np.ndarray]) -> float:
    """The difference that the maps show as their brightest colour, shared by every codec's map."""
    return max(1.0, float(np.percentile(np.concatenate([d.ravel() for d in differences]), HEAT_PERCENTILE)))


def _colormap() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[HEAT_COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def heat_map(diff: np.ndarray, scale: float) -> Image.Image:
    """A difference map in colour: black for none, the colormap's brightest from `scale` up."""
    levels = np.clip(np.rint(diff * (255 / scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(_colormap()[levels], "RGB")


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.{digits}f}"


def rows(comparison: Comparison) -> list[dict]:
    """The table's cells per codec, shared by the page, the sheet and the command's report."""
    table = []
    for coded in comparison.coded:
        score = coded.ms_ssim
        table.append({
            "codec": coded.label, "setting": coded.setting, "bytes": f"{coded.size:,}",
            "bpp": f"{bits_per_pixel(coded.size, comparison.reference):.4f}", "psnr": _number(coded.psnr, 2),
            "ms_ssim": _number(score, 4), "ms_ssim_db": "n/a" if score is None else _number(ms_ssim_db(score), 2),
            "ms_ssim_line": "MS-SSIM n/a (image too small)" if score is None else f"MS-SSIM {score:.4f} ({_number(ms_ssim_db(score), 2)} dB)",
            "encode": f"{coded.encode_s * 1000:.0f}", "decode": f"{coded.decode_s * 1000:.0f}",
            "note": "" if coded.fits else "its smallest file, over ours",
        })
    return table


TABLE_COLUMNS = (("codec", "codec"), ("setting", "setting"), ("bytes", "bytes"), ("bpp", "bpp"), ("psnr", "PSNR dB"),
                 ("ms_ssim", "MS-SSIM"), ("ms_ssim_db", "MS-SSIM dB"), ("encode", "encode ms"), ("decode", "decode ms"),
                 ("note", "note"))


def table_columns(table: list[dict]) -> list[tuple[str, str]]:
    """TABLE_COLUMNS, without the notes when there are none."""
    return [(key, title) for key, title in TABLE_COLUMNS if key != "note" or any(row["note"] for row in table)]


def summary(comparison: Comparison) -> str:
    ours = comparison.coded[0]
    return (f"{comparison.name}, {comparison.reference.width}x{comparison.reference.height}: {ours.label} {ours.setting} "
            f"makes {ours.size:,} bytes; each baseline at its largest file within that size")


def html_page(comparison: Comparison) -> str:
    """The page: a swipe between any two codecs over the image, zoom from fit to 8:1 (nearest
    neighbour from 1:1 up, in device pixels), the difference maps, and the table."""
    differences = [difference(comparison.reference, coded.decoded) for coded in comparison.coded]
    scale = heat_scale(differences)
    entries = [{"key": "original", "label": "original", "image": _data_uri(comparison.reference), "heat": None}]
    entries += [{"key": coded.key, "label": f"{coded.label} {coded.setting}", "image": _data_uri(coded.decoded),
                 "heat": _data_uri(heat_map(diff, scale))} for coded, diff in zip(comparison.coded, differences)]
    data = {"width": comparison.reference.width, "height": comparison.reference.height, "codecs": entries,
            "left": OURS, "right": entries[2]["key"] if len(entries) > 2 else "original"}
    table = rows(comparison)
    columns = table_columns(table)
    head = "".join(f'<th class="{key}">{html.escape(title)}</th>' for key, title in columns)
    body = "".join("<tr>" + "".join(f'<td class="{key}">{html.escape(row[key])}</td>' for key, _ in columns) + "</tr>" for row in table)
    values = {
        "title": html.escape(f"codec compare: {comparison.name}"), "summary": html.escape(summary(comparison)),
        "table": f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>", "scale": f"{scale:.1f}",
        "legend": _data_uri(Image.fromarray(_colormap()[None], "RGB")), "data": json.dumps(data).replace("</", "<\\/"),
    }
    return re.sub(r"\{(title|summary|table|scale|legend|data)\}", lambda match: values[match.group(1)], PAGE)  # in one pass


def _windows(total: np.ndarray, side: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of up to `count` non-overlapping side x side windows with the largest sums."""
    sums = np.pad(total.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    window = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    corners = []
    for _ in range(count):
        if not np.isfinite(window).any():
            break
        y, x = np.unravel_index(np.argmax(window), window.shape)
        corners.append((int(x), int(y)))
        window[max(0, y - side + 1): y + side, max(0, x - side + 1): x + side] = -np.inf
    return corners


def sheet(comparison: Comparison, cell: int = 256, crop: int = 64) -> Image.Image:
    """A PNG sheet for people without a browser: a column per codec (the original first) with its
    figures, the whole image, its difference map, and zoomed crops (nearest neighbour) of the two
    places where the codecs differ most from the original."""
    reference = comparison.reference
    width, height = reference.size
    differences = [difference(reference, coded.decoded) for coded in comparison.coded]
    scale = heat_scale(differences)
    side = min(crop, width, height)
    zoom = max(1, cell // side)
    corners = _windows(sum(differences), side, 2)
    fit = min(cell / width, cell / height)
    fit = math.floor(fit) if fit >= 1 else fit  # whole pixels when enlarged
    thumb = (max(1, round(width * fit)), max(1, round(height * fit)))

    def shrunk(image: Image.Image) -> Image.Image:
        return image.convert("RGB").resize(thumb, Image.Resampling.NEAREST if fit >= 1 else Image.Resampling.LANCZOS)

    font, small = ImageFont.load_default(15), ImageFont.load_default(13)
    pad, text_rows = 10, 6
    header = text_rows * 17 + pad
    column = max(cell, side * zoom) + pad
    heights = [thumb[1], thumb[1]] + [side * zoom] * len(corners)
    top = 30
    canvas = Image.new("RGB", (pad + column * (len(comparison.coded) + 1), top + header + sum(h + pad for h in heights)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 8), summary(comparison), fill="black", font=font)
    columns = [(None, reference, None)] + list(zip(rows(comparison), (c.decoded for c in comparison.coded), differences))
    for index, (row, image, diff) in enumerate(columns):
        x, y = pad + index * column, top
        if row is None:
            lines = ["original", f"{width}x{height}", "", "difference maps: RMS over RGB,", f"brightest from {scale:.1f} of 255 up"]
        else:
            lines = [f"{row['codec']} {row['setting']}", f"{row['bytes']} bytes, {row['bpp']} bpp", f"PSNR {row['psnr']} dB",
                     row["ms_ssim_line"], f"encode {row['encode']} ms, decode {row['decode']} ms", row["note"]]
        for line_number, line in enumerate(lines):
            draw.text((x, y + line_number * 17), line, fill="black" if line_number else "#0047ab", font=font if line_number == 0 else small)
        y += header
        canvas.paste(shrunk(image), (x, y))
        if row is None:
            for left, upper in corners:
                draw.rectangle((x + left * fit, y + upper * fit, x + (left + side) * fit - 1, y + (upper + side) * fit - 1), outline="#00e0ff", width=2)
        y += thumb[1] + pad
        if diff is not None:
            canvas.paste(shrunk(heat_map(diff, scale)), (x, y))
        else:
            bar = Image.fromarray(_colormap()[None], "RGB").resize((min(cell, thumb[0]), 16), Image.Resampling.NEAREST)
            canvas.paste(bar, (x, y))
            draw.text((x, y + 20), f"0 ... {scale:.1f}", fill="black", font=small)
        y += thumb[1] + pad
        for left, upper in corners:
            region = image.convert("RGB").crop((left, upper, left + side, upper + side))
            canvas.paste(region.resize((side * zoom, side * zoom), Image.Resampling.NEAREST), (x, y))
            y += side * zoom + pad
    return canvas


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
html { scrollbar-gutter: stable; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 12px 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 4px; }
p { margin: 0 0 8px; }
.controls { display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: center; margin-bottom: 6px; }
.controls button[aria-pressed="true"] { background: #0047ab; color: white; border-color: #0047ab; }
#view { position: relative; overflow: hidden; background: #444; cursor: grab;
        touch-action: none; user-select: none; }
#view.panning { cursor: grabbing; }
#view img { position: absolute; left: 0; top: 0; max-width: none; transform-origin: 0 0; pointer-events: none; }
#view.pixelated img { image-rendering: pixelated; }
#divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: white; cursor: ew-resize; }
#divider::after { content: ""; position: absolute; top: 50%; left: -9px; width: 16px; height: 16px; margin-top: -10px;
                  border: 2px solid white; border-radius: 50%; background: #0047ab; }
.tag { position: absolute; top: 6px; padding: 1px 6px; background: rgba(0, 0, 0, .6); color: white; font-size: 12px; }
#left-tag { left: 6px; } #right-tag { right: 6px; }
#split { width: 100%; margin: 6px 0 10px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #ddd; }
.codec, .setting, .note { text-align: left; }
tbody tr:first-child { font-weight: 600; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 12px; }
.legend img { width: 200px; height: 12px; image-rendering: pixelated; }
</style></head>
<body>
<h1>{title}</h1>
<p>{summary}. The images are the decoded pixels (PNG); drag to pan, wheel or the buttons to zoom, drag the white line or the slider to swipe.</p>
<div class="controls">
<label>left <select id="left"></select></label>
<label>right <select id="right"></select></label>
<label><input type="checkbox" id="heat"> difference from the original</label>
<span>zoom <button type="button" data-zoom="0">fit</button><button type="button" data-zoom="1">1:1</button><button type="button" data-zoom="2">2:1</button><button type="button" data-zoom="4">4:1</button><button type="button" data-zoom="8">8:1</button></span>
</div>
<div id="view"><img id="right-image" alt=""><img id="left-image" alt=""><div id="divider"></div>
<span class="tag" id="left-tag"></span><span class="tag" id="right-tag"></span></div>
<input type="range" id="split" min="0" max="1000" value="500" aria-label="swipe position">
<div class="legend">difference: <span>0</span><img src="{legend}" alt=""><span>{scale} and more (RMS over R, G, B, of 255)</span></div>
<table>{table}</table>
<script id="data" type="application/json">{data}</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const byKey = Object.fromEntries(data.codecs.map(c => [c.key, c]));
const view = document.getElementById("view"), split = document.getElementById("split"), heat = document.getElementById("heat");
const divider = document.getElementById("divider");
const sides = ["left", "right"].map(name => ({
  select: document.getElementById(name), image: document.getElementById(name + "-image"), tag: document.getElementById(name + "-tag")}));
const levels = [0, 1, 2, 4, 8];  // 0: fit; otherwise screen pixels per image pixel
let level = 0, scale = 1, x0 = 0, y0 = 0;

function scaleOf(l) {  // CSS pixels per image pixel
  return l === 0 ? Math.min(view.clientWidth / data.width, view.clientHeight / data.height) : l / window.devicePixelRatio;
}
function show() {
  for (const side of sides) {
    const codec = byKey[side.select.value];
    const mapped = heat.checked && codec.heat;
    side.image.src = mapped ? codec.heat : codec.image;
    side.tag.textContent = codec.label + (mapped ? " (difference)" : "");
  }
}
function place() {
  const w = data.width * scale, h = data.height * scale, vw = view.clientWidth, vh = view.clientHeight;
  const dpr = window.devicePixelRatio;
  x0 = w <= vw ? (vw - w) / 2 : Math.min(0, Math.max(vw - w, x0));  // centred, or covering the view
  y0 = h <= vh ? (vh - h) / 2 : Math.min(0, Math.max(vh - h, y0));
  x0 = Math.round(x0 * dpr) / dpr; y0 = Math.round(y0 * dpr) / dpr;  // whole device pixels
  for (const side of sides) {
    Object.assign(side.image.style, {width: w + "px", height: h + "px", transform: "translate(" + x0 + "px," + y0 + "px)"});
  }
  view.classList.toggle("pixelated", scale * dpr >= 1);
  const x = split.value / 1000 * vw;
  sides[0].image.style.clipPath = "inset(0 " + Math.max(0, w - (x - x0)) + "px 0 0)";
  divider.style.left = x + "px";
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.zoom) === level));
  }
}
function zoom(l, cx, cy) {  // to level l, keeping the image point under (cx, cy) where it is
  const next = scaleOf(l);
  x0 = cx - (cx - x0) * next / scale; y0 = cy - (cy - y0) * next / scale;
  level = l; scale = next; place();
}
for (const side of sides) {
  for (const codec of data.codecs) side.select.add(new Option(codec.label, codec.key));
  side.select.addEventListener("change", show);
}
sides[0].select.value = data.left; sides[1].select.value = data.right;
heat.addEventListener("change", show);
split.addEventListener("input", place);
for (const button of document.querySelectorAll("[data-zoom]")) {
  button.addEventListener("click", () => zoom(Number(button.dataset.zoom), view.clientWidth / 2, view.clientHeight / 2));
}
view.addEventListener("wheel", event => {
  event.preventDefault();
  const index = Math.max(0, Math.min(levels.length - 1, levels.indexOf(level) + (event.deltaY < 0 ? 1 : -1)));
  const box = view.getBoundingClientRect();
  zoom(levels[index], event.clientX - box.left, event.clientY - box.top);
}, {passive: false});
let drag = null;
view.addEventListener("pointerdown", event => {
  drag = {swipe: event.target === divider, x: event.clientX, y: event.clientY};
  view.setPointerCapture(event.pointerId);
  view.classList.toggle("panning", !drag.swipe);
});
view.addEventListener("pointermove", event => {
  if (!drag) return;
  if (drag.swipe) {
    split.value = (event.clientX - view.getBoundingClientRect().left) / view.clientWidth * 1000;
  } else {
    x0 += event.clientX - drag.x; y0 += event.clientY - drag.y;
  }
  drag.x = event.clientX; drag.y = event.clientY;
  place();
});
for (const type of ["pointerup", "pointercancel"]) {
  view.addEventListener(type, () => { drag = null; view.classList.remove("panning"); });
}
function size() {  // the image's shape, at most 70 % of the window's height
  view.style.height = Math.max(240, Math.min(0.7 * window.innerHeight, view.clientWidth * data.height / data.width)) + "px";
}
window.addEventListener("resize", () => { size(); zoom(level, view.clientWidth / 2, view.clientHeight / 2); });
show();
size();
scale = scaleOf(0);
place();
</script>
</body></html>
"""
