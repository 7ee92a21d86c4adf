"""`codec fetch kodak` against a local HTTP server: pinned hashes, refused mismatches, skipped files."""

import functools
import hashlib
import http.server
import threading

import pytest

import codec.fetch
from codec.errors import CodecError
from codec.fetch import fetch_kodak
from tests.helpers import assert_one_line_error, run


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Two files on a local server, pinned as the 'Kodak' set; yields {name: bytes}."""
    root = tmp_path / "served"
    root.mkdir()
    files = {"kodim01.png": b"first image" * 100, "kodim02.png": b"second image" * 100}
    for name, data in files.items():
        (root / name).write_bytes(data)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(codec.fetch, "BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setattr(codec.fetch, "KODAK_SHA256", {n: hashlib.sha256(d).hexdigest() for n, d in files.items()})
    yield files
    server.shutdown()
    server.server_close()


def test_downloads_and_verifies(served, tmp_path):
    target = tmp_path / "kodak"
    assert fetch_kodak(target) == 2
    assert {p.name: p.read_bytes() for p in target.iterdir()} == served


def test_skips_good_files_and_replaces_bad_ones(served, tmp_path):
    target = tmp_path / "kodak"
    target.mkdir()
    (target / "kodim01.png").write_bytes(served["kodim01.png"])
    (target / "kodim02.png").write_bytes(b"damaged")
    assert fetch_kodak(target) == 1
    assert (target / "kodim02.png").read_bytes() == served["kodim02.png"]
    assert fetch_kodak(target) == 0


def test_mismatch_is_refused_and_not_kept(served, tmp_path, monkeypatch):
    monkeypatch.setitem(codec.fetch.KODAK_SHA256, "kodim02.png", "0" * 64)
    target = tmp_path / "kodak"
    target.mkdir()
    (target / "kodim02.png").write_bytes(b"an old bad copy")
    with pytest.raises(CodecError, match="does not match the pinned"):
        fetch_kodak(target)
    assert sorted(p.name for p in target.iterdir()) == ["kodim01.png"]


def test_cli_fetch(served, tmp_path, monkeypatch):
    target = tmp_path / "kodak"
    result = run("fetch", "kodak", target)
    assert result.exit_code == 0, result.output
    assert "2 downloaded, 0 already there" in result.stdout
    assert "0 downloaded, 2 already there" in run("fetch", "kodak", target).stdout
    assert_one_line_error(run("fetch", "imagenet", target), "unknown dataset 'imagenet'")
    monkeypatch.setitem(codec.fetch.KODAK_SHA256, "kodim03.png", "0" * 64)
    assert_one_line_error(run("fetch", "kodak", target), "download failed (HTTP 404)")
    (tmp_path / "served" / "kodim03.png").write_bytes(b"not what was pinned")
    assert_one_line_error(run("fetch", "kodak", target), "does not match the pinned")
    assert not (target / "kodim03.png").exists()
    monkeypatch.setattr(codec.fetch, "BASE_URL", "http://127.0.0.1:9/")  # the discard port: nobody listens
    assert_one_line_error(run("fetch", "kodak", target), "download failed")
