"""A non-editable install: nothing but `codec` at the top of site-packages, and every file it reads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import image_folder

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project as `pip install .` lays it out, in a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True)
    return target


def run_installed(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True)


def test_only_codec_lands_at_the_top(installed):
    top = {path.name for path in installed.iterdir()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"codec", "bin"}
    assert (installed / "codec" / "models" / "weights" / "vr1.pt").is_file()


def test_installed_copy_compresses_and_evaluates_from_another_folder(installed, tmp_path):
    images = image_folder(tmp_path / "images", 64, 48)
    source = ("import codec, codec.report, pathlib; assert codec.__file__.startswith(%r), codec.__file__; "
              "data = codec.compress(%r); print(codec.decompress(data).size)") % (str(installed), str(images / "0.png"))
    result = run_installed(installed, tmp_path, sys.executable, "-c", source)
    assert result.returncode == 0 and result.stdout.strip() == "(64, 48)", result.stderr
    result = run_installed(installed, tmp_path, sys.executable, str(installed / "bin" / "codec"), "eval", str(images),
                           "--models", "none", "--baselines", "jpeg420", "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report" / "rd.png").stat().st_size > 0
