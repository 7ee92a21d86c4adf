"""A non-editable install: nothing but `codec` at the top of site-packages, and every file it reads."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codec.registry import DEFAULT_MODEL
from tests.helpers import image_folder

ROOT = Path(__file__).parents[1]


# Left out of the copy that is installed: what is not the package.
NOT_INSTALLED = shutil.ignore_patterns(".git", ".venv", ".whl", "runs", "docs", "build", "*.egg-info", "__pycache__")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The project as `pip install .` lays it out, in a folder of its own."""
    source, target = tmp_path_factory.mktemp("source") / "lic", tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT, source, ignore=NOT_INSTALLED)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-compile",
                    "--target", str(target), str(source)], check=True, capture_output=True)
    return target


def run_installed(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(args, cwd=cwd, env=environment, capture_output=True, text=True)


def test_only_codec_lands_at_the_top(installed):
    top = {path.name for path in installed.iterdir()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"codec", "bin"}
    assert (installed / "codec" / "models" / "weights" / f"{DEFAULT_MODEL}.pt").is_file()


def test_installed_copy_compresses_and_evaluates_from_another_folder(installed, tmp_path):
    """One process (each start imports torch): the API, then `codec eval` through the installed CLI."""
    images = image_folder(tmp_path / "images", 64, 48)
    source = (
        "import codec, sys; assert codec.__file__.startswith(%r), codec.__file__\n"
        "print(codec.decompress(codec.compress(%r)).size)\n"
        "from codec.cli.main import app\n"
        "sys.argv = ['codec', 'eval', %r, '--models', 'none', '--baselines', 'jpeg420', '--out', %r]\n"
        "app()\n"
    ) % (str(installed), str(images / "0.png"), str(images), str(tmp_path / "report"))
    result = run_installed(installed, tmp_path, sys.executable, "-c", source)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("(64, 48)")
    assert (tmp_path / "report" / "rd.png").stat().st_size > 0
