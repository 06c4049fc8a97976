"""Tests of downloading named datasets, against an http.server on 127.0.0.1
serving archives (tar.gz and zip) built here."""

import dataclasses
import functools
import hashlib
import http.server
import io
import os
import socket
import stat
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from tfi2i.data import (CYCLEGAN_DATASETS, DATASETS, has_split, num_examples, resolve_dataset,
                        safe_extract)
from tfi2i.data.download import default_cache_dir
from tfi2i.errors import UserError


def _png_bytes(seed):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _make_tar(path, members):
    """Writes a tar.gz; members: (name, bytes) files or (name, TarInfo) entries."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            if isinstance(content, tarfile.TarInfo):
                tar.addfile(content)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _facades_members():
    return [(f"facades/{split}/{i}.png", _png_bytes(i)) for split in ("train", "test")
            for i in range(3)]


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/served on 127.0.0.1; yields (base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/pix2pix/datasets", served
    httpd.shutdown()
    httpd.server_close()


def _serve_facades(served, members=None):
    folder = served / "pix2pix" / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    archive = _make_tar(folder / "facades.tar.gz", members or _facades_members())
    data = archive.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/pix2pix/datasets"


def _leftovers(cache, dataset="facades"):
    """Files in the cache other than the finished dataset."""
    found = []
    for dirpath, _, files in os.walk(cache):
        found += [os.path.join(dirpath, f) for f in files]
    return [f for f in found if f"{os.sep}{dataset}{os.sep}" not in f]


def test_download_verify_extract_and_reuse(server, tmp_path, monkeypatch):
    url, served = server
    size, sha256 = _serve_facades(served)
    monkeypatch.setitem(DATASETS, "facades",
                        dataclasses.replace(DATASETS["facades"], size=size, sha256=sha256))
    cache = tmp_path / "cache"
    root = resolve_dataset("facades", cache_dir=cache, mirror=url)
    assert root == str(cache / "facades")
    assert num_examples(root, "train") == 3 and num_examples(root, "test") == 3
    assert (cache / "facades" / "train" / "0.png").read_bytes() == _png_bytes(0)
    assert _leftovers(cache) == []  # Archive and temporary files are gone.
    # The second call uses the cache: the server is not asked.
    os.remove(served / "pix2pix" / "datasets" / "facades.tar.gz")
    assert resolve_dataset("facades", cache_dir=cache, mirror=_closed_port_url()) == root


def test_mirror_and_cache_from_environment(server, tmp_path, monkeypatch):
    url, served = server
    size, sha256 = _serve_facades(served)
    monkeypatch.setitem(DATASETS, "facades",
                        dataclasses.replace(DATASETS["facades"], size=size, sha256=sha256))
    monkeypatch.setenv("TFI2I_DATASET_MIRROR", url)
    monkeypatch.setenv("TFI2I_CACHE", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    assert resolve_dataset("facades") == str(tmp_path / "envcache" / "facades")


def test_unknown_checksum_checks_the_structure(server, tmp_path, monkeypatch):
    url, served = server
    _serve_facades(served, [("other/train/0.png", _png_bytes(0))])
    monkeypatch.setitem(DATASETS, "facades",
                        dataclasses.replace(DATASETS["facades"], size=None, sha256=None))
    with pytest.raises(UserError, match=r"facades/train/ folder.*\['other'\]"):
        resolve_dataset("facades", cache_dir=tmp_path / "cache", mirror=url)
    assert not (tmp_path / "cache" / "facades").exists()
    assert _leftovers(tmp_path / "cache") == []


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "0" * 64, "SHA-256 is"),
    ("size", 123, "bytes where 123 were expected"),
])
def test_damaged_download_is_rejected(server, tmp_path, monkeypatch, field, value, message):
    url, served = server
    size, sha256 = _serve_facades(served)
    spec = dataclasses.replace(DATASETS["facades"], size=size, sha256=sha256)
    monkeypatch.setitem(DATASETS, "facades", dataclasses.replace(spec, **{field: value}))
    with pytest.raises(UserError, match=message) as error:
        resolve_dataset("facades", cache_dir=tmp_path / "cache", mirror=url)
    assert "tar -xzf facades.tar.gz" in str(error.value)
    assert not (tmp_path / "cache" / "facades").exists()
    assert _leftovers(tmp_path / "cache") == []


def test_unreachable_or_missing_gives_instructions(server, tmp_path):
    url, _ = server
    bad_url = _closed_port_url()
    with pytest.raises(UserError, match="Could not download dataset 'facades'") as error:
        resolve_dataset("facades", cache_dir=tmp_path / "cache", mirror=bad_url)
    message = str(error.value)
    assert f"{bad_url}/facades.tar.gz" in message
    assert f"-C {tmp_path / 'cache'}" in message and "--data_dir" in message
    with pytest.raises(UserError, match="HTTP Error 404"):
        resolve_dataset("facades", cache_dir=tmp_path / "cache", mirror=url)
    assert _leftovers(tmp_path / "cache") == []


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("member, problem", [
    (("../evil", b"x"), "'..' path component"),
    (("facades/../../evil", b"x"), "'..' path component"),
    (("/tmp/evil", b"x"), "absolute path"),
    (("facades/link", _link("facades/link", "../../evil")), "outside the extraction folder"),
    (("facades/hard", _link("facades/hard", "/etc/passwd", tarfile.LNKTYPE)),
     "outside the extraction folder"),
])
def test_unsafe_archives_are_refused(tmp_path, member, problem):
    archive = _make_tar(tmp_path / "evil.tar.gz", [("facades/train/0.png", _png_bytes(0)),
                                                    member])
    target = tmp_path / "out" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(UserError, match=problem):
        safe_extract(archive, target)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    assert (target / "facades" / "train" / "0.png").exists()  # Extracted up to the bad one.


def test_unsafe_download_is_refused(server, tmp_path, monkeypatch):
    url, served = server
    _serve_facades(served, [*_facades_members(), ("../evil", b"x")])
    monkeypatch.setitem(DATASETS, "facades",
                        dataclasses.replace(DATASETS["facades"], size=None, sha256=None))
    with pytest.raises(UserError, match="Refusing to extract"):
        resolve_dataset("facades", cache_dir=tmp_path / "cache", mirror=url)
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "cache" / "facades").exists()


def test_registry_lists_the_pix2pix_and_cyclegan_archives():
    pix2pix = {"facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"}
    cyclegan = {"apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo",
                "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes",
                "facades", "iphone2dslr_flower"}
    # Plain names for the CycleGAN sets that do not clash with pix2pix's.
    assert set(DATASETS) == pix2pix | cyclegan | {f"cyclegan/{n}" for n in cyclegan}
    assert set(CYCLEGAN_DATASETS) == {f"cyclegan/{n}" for n in cyclegan}
    assert DATASETS["facades"].url() == \
        "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
    assert DATASETS["facades"].url("http://mirror/x/") == "http://mirror/x/facades.tar.gz"
    assert not DATASETS["facades"].unpaired and DATASETS["cyclegan/facades"].unpaired
    assert DATASETS["cyclegan/facades"].url() == \
        "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/facades.zip"
    assert DATASETS["horse2zebra"] is DATASETS["cyclegan/horse2zebra"]
    assert DATASETS["horse2zebra"].url("http://mirror/x") == "http://mirror/x/horse2zebra.zip"
    for spec in DATASETS.values():
        assert spec.sha256 is None or len(spec.sha256) == 64
    for spec in CYCLEGAN_DATASETS.values():  # As TFDS records them for the same URLs.
        assert spec.size and spec.sha256


def test_half_set_up_cache_folder_is_reported(tmp_path):
    (tmp_path / "facades" / "test").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no train/ folder"):
        resolve_dataset("facades", cache_dir=tmp_path, mirror=_closed_port_url())


# --- CycleGAN zip archives -------------------------------------------------------

def _make_zip(path, members):
    """Writes a zip; members: (name, bytes) files or (ZipInfo, bytes) entries."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return path


def _horse2zebra_members():
    counts = (("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 2))
    return [(f"horse2zebra/{folder}/{i}.png", _png_bytes(10 * k + i))
            for k, (folder, n) in enumerate(counts) for i in range(n)]


def _serve_zip(served, members=None, name="horse2zebra"):
    """Puts <name>.zip beside the tar.gz archives: a mirror serves all from one folder."""
    folder = served / "pix2pix" / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    data = _make_zip(folder / f"{name}.zip", members or _horse2zebra_members()).read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _patch_spec(monkeypatch, name, **fields):
    spec = dataclasses.replace(DATASETS[name], **fields)
    monkeypatch.setitem(DATASETS, name, spec)
    return spec


def test_zip_download_verify_extract_and_reuse(server, tmp_path, monkeypatch):
    url, served = server
    size, sha256 = _serve_zip(served)
    _patch_spec(monkeypatch, "horse2zebra", size=size, sha256=sha256)
    cache = tmp_path / "cache"
    root = resolve_dataset("horse2zebra", cache_dir=cache, mirror=url)
    assert root == str(cache / "cyclegan" / "horse2zebra")
    assert num_examples(root, "train", paired=False) == 3
    assert num_examples(root, "test", paired=False) == 2
    assert has_split(root, "test", paired=False)
    assert (cache / "cyclegan" / "horse2zebra" / "trainB" / "1.png").read_bytes() == \
        _png_bytes(11)
    assert _leftovers(cache, "horse2zebra") == []
    os.remove(served / "pix2pix" / "datasets" / "horse2zebra.zip")
    assert resolve_dataset("horse2zebra", cache_dir=cache, mirror=_closed_port_url()) == root


def test_cyclegan_facades_is_not_pix2pix_facades(server, tmp_path, monkeypatch):
    url, served = server
    members = [(f"facades/{folder}/0.png", _png_bytes(0)) for folder in ("trainA", "trainB")]
    size, sha256 = _serve_zip(served, members, name="facades")
    _patch_spec(monkeypatch, "cyclegan/facades", size=size, sha256=sha256)
    cache = tmp_path / "cache"
    root = resolve_dataset("cyclegan/facades", cache_dir=cache, mirror=url)
    assert root == str(cache / "cyclegan" / "facades")
    assert num_examples(root, "train", paired=False) == 1
    assert not (cache / "facades").exists()  # The pix2pix set's place is untouched.
    # An archive extracted by hand into a folder of one's own is found by its name.
    assert resolve_dataset("cyclegan/facades", data_dir=cache / "cyclegan") == root


def test_zip_damaged_or_unreachable_gives_instructions(server, tmp_path, monkeypatch):
    url, served = server
    size, _ = _serve_zip(served)
    _patch_spec(monkeypatch, "horse2zebra", size=size, sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="SHA-256 is") as error:
        resolve_dataset("horse2zebra", cache_dir=cache, mirror=url)
    assert f"unzip -q horse2zebra.zip -d {cache / 'cyclegan'}" in str(error.value)
    assert "trainA/, trainB/, testA/ and testB/" in str(error.value)
    bad_url = _closed_port_url()
    with pytest.raises(UserError, match="Could not download dataset 'cyclegan/horse2zebra'") \
            as error:
        resolve_dataset("horse2zebra", cache_dir=cache, mirror=bad_url)
    assert f"{bad_url}/horse2zebra.zip" in str(error.value)
    assert not (cache / "cyclegan" / "horse2zebra").exists()
    assert _leftovers(cache, "horse2zebra") == []


@pytest.mark.parametrize("members, message", [
    ([("horse2zebra/trainA/0.png", _png_bytes(0))], r"expected horse2zebra/trainB/ folder"),
    ([("other/trainA/0.png", _png_bytes(0))], r"horse2zebra/trainA/ folder.*\['other'\]"),
])
def test_zip_structure_is_checked(server, tmp_path, monkeypatch, members, message):
    url, served = server
    _serve_zip(served, members)
    _patch_spec(monkeypatch, "horse2zebra", size=None, sha256=None)
    with pytest.raises(UserError, match=message):
        resolve_dataset("horse2zebra", cache_dir=tmp_path / "cache", mirror=url)
    assert not (tmp_path / "cache" / "cyclegan" / "horse2zebra").exists()
    assert _leftovers(tmp_path / "cache", "horse2zebra") == []


def test_corrupt_zip_is_reported(server, tmp_path, monkeypatch):
    url, served = server
    (served / "pix2pix" / "datasets").mkdir(parents=True)
    (served / "pix2pix" / "datasets" / "horse2zebra.zip").write_bytes(b"PK\x03\x04 not a zip")
    _patch_spec(monkeypatch, "horse2zebra", size=None, sha256=None)
    with pytest.raises(UserError, match="is corrupt"):
        resolve_dataset("horse2zebra", cache_dir=tmp_path / "cache", mirror=url)


def _zip_entry(name, mode):
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize("member, problem", [
    (("../evil", b"x"), "'..' path component"),
    (("horse2zebra/../../evil", b"x"), "'..' path component"),
    (("/tmp/evil", b"x"), "absolute path"),
    (("C:/evil", b"x"), "absolute path"),
    ((_zip_entry("horse2zebra/link", stat.S_IFLNK | 0o777), b"../../evil"), "symbolic link"),
    ((_zip_entry("horse2zebra/fifo", stat.S_IFIFO | 0o644), b""), "FIFO"),
])
def test_unsafe_zip_archives_are_refused(tmp_path, member, problem):
    archive = _make_zip(tmp_path / "evil.zip", [("horse2zebra/trainA/0.png", _png_bytes(0)),
                                                member])
    target = tmp_path / "out" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(UserError, match=problem):
        safe_extract(archive, target)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    assert not (target / "horse2zebra" / "link").exists()
    assert (target / "horse2zebra" / "trainA" / "0.png").exists()  # Up to the bad one.
