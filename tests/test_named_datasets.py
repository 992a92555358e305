"""Named datasets: the real download code against a local HTTP server on 127.0.0.1 (through
CONVSCOPE_DATA_MIRROR), serving small files the tests make in each published archive format, with
catalogue entries and hashes of the tests' own. No test reaches the internet."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from convscope.cli import main
from convscope.data.catalog import CATALOG, CatalogEntry, RemoteFile
from convscope.data.download import CacheSettings, place
from convscope.data.named import CONVERTED, datasets, load_named
from convscope.data.raw import build_dataset
from convscope.errors import UserError
from synthetic import png

# ----------------------------------------------------------------------------------------------- the server


class Server(ThreadingHTTPServer):
    """Serves `files` by path with range requests; `modes[path]` misbehaves: "404", "500", "stall",
    ("cut", n) cuts the first response after n bytes, ("truncate", n) never sends more than n bytes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, object] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/mirror/"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = self.path.removeprefix("/mirror/")
        self.server.requests.append((path, self.headers.get("Range")))
        mode = self.server.modes.get(path)
        if mode in ("404", "500") or path not in self.server.files:
            self.send_error(int(mode) if mode == "500" else 404)
            return
        if mode == "stall":
            self.server.release.wait(60)
            return
        body = self.server.files[path]
        start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if isinstance(mode, tuple) and mode[0] == "cut":
            self.server.modes.pop(path)  # once: the retry gets the rest
            self.wfile.write(body[start : mode[1]])
        elif isinstance(mode, tuple) and mode[0] == "truncate":
            self.wfile.write(body[start : max(start, mode[1])])
        else:
            self.wfile.write(body[start:])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def settings_for(tmp_path: Path, mirror: str, timeout: float = 10.0) -> CacheSettings:
    return CacheSettings(tmp_path / "cache", mirror, timeout, progress=False, log=io.StringIO())


def closed_port_url() -> str:
    """A 127.0.0.1 URL where nothing listens: the connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mirror/"


# ----------------------------------------------------------------------------------- archives the tests make


def idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def entry_for(name: str, kind: str, files: dict[str, bytes], train: int, test: int, classes, shape, **kw):
    remote = tuple(
        RemoteFile(n, (f"https://example.invalid/{n}",), len(b), hashlib.sha256(b).hexdigest())
        for n, b in files.items()
    )
    entry = CatalogEntry(
        name,
        name,
        remote,
        kind,
        train,
        test,
        tuple(classes),
        shape,
        "test",
        "tests",
        "https://example.invalid",
        "tests",
        **kw,
    )
    return entry


def serve(server: Server, entry: CatalogEntry, files: dict[str, bytes]) -> None:
    for n, b in files.items():
        server.files[f"{entry.name}/{n}"] = b


def idx_archive(rng) -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    arrays = {
        "train-images": rng.integers(0, 256, (30, 4, 4)),
        "train-labels": np.arange(30) % 3,
        "t10k-images": rng.integers(0, 256, (9, 4, 4)),
        "t10k-labels": np.arange(9) % 3,
    }
    files = {f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz": gzip.compress(idx(v)) for k, v in arrays.items()}
    return files, arrays


@pytest.fixture
def digits(server, tmp_path):
    """An `idx-gz` entry (MNIST's format) served by the local server: (entry, settings, files, arrays)."""
    files, arrays = idx_archive(np.random.default_rng(0))
    entry = entry_for("tiny-idx", "idx-gz", files, 30, 9, "abc", (4, 4, 1))
    serve(server, entry, files)
    return entry, settings_for(tmp_path, server.url), files, arrays


def leftovers(settings: CacheSettings, entry: CatalogEntry) -> list[str]:
    """Files in the dataset's cache folder other than its lock."""
    folder = settings.root / entry.name
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.exists() else []


# --------------------------------------------------------------------------------------------------- tests


@pytest.mark.network
def test_a_download_is_verified_converted_and_loaded_with_its_split_and_class_names(digits, server):
    entry, settings, files, arrays = digits
    data = build_dataset(load_named(entry, settings), entry.name, entry.class_names)
    assert data.class_names == ("a", "b", "c")
    np.testing.assert_array_equal(data.images[..., 0], arrays["train-images"])
    np.testing.assert_array_equal(data.labels, arrays["train-labels"])
    assert data.predefined_test is not None and len(data.predefined_test) == 9
    np.testing.assert_array_equal(data.predefined_test.images[..., 0], arrays["t10k-images"])
    assert sorted(leftovers(settings, entry)) == sorted([*files, CONVERTED])
    asked = len(server.requests)
    assert asked == 4
    # The second load reads the converted arrays: no request, even with the archives gone.
    for name in files:
        (settings.root / entry.name / name).unlink()
    again = build_dataset(load_named(entry, settings), entry.name, entry.class_names)
    np.testing.assert_array_equal(again.images, data.images)
    assert len(server.requests) == asked


@pytest.mark.network
def test_a_cut_connection_is_resumed_with_a_range_request(digits, server):
    entry, settings, files, _arrays = digits
    name = "train-images-idx3-ubyte.gz"
    server.modes[f"{entry.name}/{name}"] = ("cut", 200)
    load_named(entry, settings)
    ranges = [r for p, r in server.requests if p.endswith(name)]
    assert ranges == [None, "bytes=200-"]
    assert (settings.root / entry.name / name).read_bytes() == files[name]


@pytest.mark.network
def test_a_partial_file_left_by_ctrl_c_is_continued_by_the_next_run(digits, server):
    entry, settings, files, _arrays = digits
    name = "train-images-idx3-ubyte.gz"
    part = settings.root / entry.name / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(files[name][:300])
    load_named(entry, settings)
    assert [r for p, r in server.requests if p.endswith(name)] == ["bytes=300-"]
    assert (settings.root / entry.name / name).read_bytes() == files[name] and not part.exists()


@pytest.mark.network
@pytest.mark.parametrize("code", ["404", "500"])
def test_an_http_error_names_the_url_and_the_place_and_leaves_nothing(digits, server, code):
    entry, settings, _files, _arrays = digits
    name = "train-labels-idx1-ubyte.gz"
    server.modes[f"{entry.name}/{name}"] = code
    with pytest.raises(UserError) as caught:
        load_named(entry, settings)
    message = str(caught.value)
    assert f"HTTP {code}" in message
    assert f"{server.url}{entry.name}/{name}" in message
    assert str(place(settings, entry, entry.files[1])) in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert leftovers(settings, entry) == ["train-images-idx3-ubyte.gz"]  # the file before it is whole and kept


@pytest.mark.network
def test_a_checksum_mismatch_is_refused_and_deleted(digits, server):
    entry, settings, files, _arrays = digits
    name = "t10k-images-idx3-ubyte.gz"
    good = files[name]
    server.files[f"{entry.name}/{name}"] = bytes(len(good))  # right size, wrong bytes
    with pytest.raises(UserError) as caught:
        load_named(entry, settings)
    message = str(caught.value)
    assert "SHA-256" in message and hashlib.sha256(good).hexdigest() in message
    assert f"{server.url}{entry.name}/{name}" in message and str(settings.root / entry.name / name) in message
    assert name not in leftovers(settings, entry) and not any(n.endswith(".part") for n in leftovers(settings, entry))
    assert CONVERTED not in leftovers(settings, entry)


@pytest.mark.network
def test_a_body_that_stays_short_is_refused_and_deleted(digits, server):
    entry, settings, _files, _arrays = digits
    name = "train-images-idx3-ubyte.gz"
    server.modes[f"{entry.name}/{name}"] = ("truncate", 100)
    with pytest.raises(UserError, match=r"after 100 of 519 bytes\); .* place it at .*train-images-idx3-ubyte\.gz"):
        load_named(entry, settings)
    assert leftovers(settings, entry) == []


@pytest.mark.network
def test_a_stalled_server_times_out_with_the_message_and_a_clean_cache(digits, server, tmp_path):
    entry, _settings, _files, _arrays = digits
    settings = settings_for(tmp_path, server.url, timeout=0.5)
    server.modes[f"{entry.name}/train-images-idx3-ubyte.gz"] = "stall"
    with pytest.raises(
        UserError, match=r"tiny-idx: could not download .*train-images-idx3-ubyte\.gz \(no data for 0\.5 s"
    ):
        load_named(entry, settings)
    assert leftovers(settings, entry) == []


@pytest.mark.network
def test_a_refused_connection_says_so(digits, tmp_path):
    entry, _settings, _files, _arrays = digits
    settings = settings_for(tmp_path, closed_port_url())
    with pytest.raises(UserError, match=r"\(connection refused\); .* place it at .*, beside its partners"):
        load_named(entry, settings)
    assert leftovers(settings, entry) == []


@pytest.mark.network
def test_files_placed_by_hand_are_verified_and_used_with_no_network(digits, tmp_path):
    entry, _settings, files, arrays = digits
    settings = settings_for(tmp_path, closed_port_url())
    for f in entry.files:
        path = place(settings, entry, f)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[f.name])
    data = build_dataset(load_named(entry, settings), entry.name, entry.class_names)
    np.testing.assert_array_equal(data.labels, arrays["train-labels"])


@pytest.mark.network
def test_a_wrong_file_placed_by_hand_is_refused_and_left_alone(digits, tmp_path):
    entry, _settings, files, _arrays = digits
    settings = settings_for(tmp_path, closed_port_url())
    path = place(settings, entry, entry.files[0])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the file")
    with pytest.raises(UserError, match=r"is not the published file: it holds 12 bytes, not the published"):
        load_named(entry, settings)
    assert path.read_bytes() == b"not the file"


@pytest.mark.network
def test_a_lock_held_by_another_process_makes_this_one_wait_and_use_its_file(digits, server):
    entry, settings, files, arrays = digits
    folder = settings.root / entry.name
    folder.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
            "sys.stdin.readline(); lock.release()",
            str(folder / ".lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        outcome: list[object] = []
        worker = threading.Thread(target=lambda: outcome.append(_try(load_named, entry, settings)))
        worker.start()
        deadline = time.monotonic() + 120  # generous: only how long a busy machine may take to get there
        while "waiting for another process" not in settings.log.getvalue() and time.monotonic() < deadline:  # type: ignore[union-attr]
            time.sleep(0.05)
        assert "waiting for another process" in settings.log.getvalue()  # type: ignore[union-attr]
        for name, body in files.items():  # what the other process downloaded meanwhile
            (folder / name).write_bytes(body)
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        worker.join(120)
    finally:
        holder.kill()
        holder.wait()
    assert not isinstance(outcome[0], BaseException), outcome[0]
    assert server.requests == []  # nothing downloaded twice
    raw = outcome[0]
    np.testing.assert_array_equal(raw.train.labels, arrays["train-labels"])  # type: ignore[attr-defined]


def _try(function, *args):
    try:
        return function(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        return exc


@pytest.mark.network
def test_emnist_zip_is_read_transposed_with_letters_from_zero(server, tmp_path):
    rng = np.random.default_rng(1)
    images = {s: rng.integers(0, 256, (n, 4, 4)) for s, n in (("train", 26), ("test", 26))}
    labels = {s: np.arange(26) + 1 for s in ("train", "test")}  # EMNIST numbers letters 1..26
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for s in ("train", "test"):
            z.writestr(f"gzip/emnist-letters-{s}-images-idx3-ubyte.gz", gzip.compress(idx(images[s])))
            z.writestr(f"gzip/emnist-letters-{s}-labels-idx1-ubyte.gz", gzip.compress(idx(labels[s])))
            z.writestr(f"gzip/emnist-digits-{s}-labels-idx1-ubyte.gz", b"other subsets are ignored")
    files = {"gzip.zip": buffer.getvalue()}
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    entry = entry_for("tiny-emnist", "emnist-zip", files, 26, 26, letters, (4, 4, 1), subset="letters")
    serve(server, entry, files)
    data = build_dataset(load_named(entry, settings_for(tmp_path, server.url)), entry.name, entry.class_names)
    np.testing.assert_array_equal(data.images[..., 0], images["train"].transpose(0, 2, 1))
    np.testing.assert_array_equal(data.labels, np.arange(26))
    assert data.class_names[data.labels[0]] == "A"
    assert data.predefined_test is not None and len(data.predefined_test) == 26


@pytest.mark.network
def test_cifar10_binary_records_become_rgb_images_without_any_pickle(server, tmp_path):
    rng = np.random.default_rng(2)
    planes = rng.integers(0, 256, (12, 3, 32, 32)).astype(np.uint8)  # channels first, as the records store them
    labels = np.arange(12) % 10
    records = np.concatenate([labels[:, None].astype(np.uint8), planes.reshape(12, -1)], axis=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        batches = {f"data_batch_{i + 1}.bin": records[2 * i : 2 * i + 2] for i in range(5)}
        batches["test_batch.bin"] = records[10:]
        for name, rows in batches.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = rows.nbytes
            tar.addfile(info, io.BytesIO(rows.tobytes()))
    files = {"cifar-10-binary.tar.gz": buffer.getvalue()}
    entry = entry_for("tiny-cifar", "cifar10-bin", files, 10, 2, CATALOG["cifar10"].class_names, (32, 32, 3))
    serve(server, entry, files)
    data = build_dataset(load_named(entry, settings_for(tmp_path, server.url)), entry.name, entry.class_names)
    np.testing.assert_array_equal(data.images, planes[:10].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(data.labels, labels[:10])
    assert data.class_names[1] == "automobile"
    assert data.predefined_test is not None
    np.testing.assert_array_equal(data.predefined_test.images, planes[10:].transpose(0, 2, 3, 1))


def notmnist_archive(bad: str | None = None) -> tuple[dict[str, bytes], np.ndarray]:
    """notMNIST's shape: <top>/<letter>/<name>.png for A-J, two pictures each, plus an empty (unreadable) file."""
    rng = np.random.default_rng(3)
    pictures = rng.integers(0, 256, (20, 28, 28)).astype(np.uint8)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for i, picture in enumerate(pictures):
            body = png(picture[..., np.newaxis])
            info = tarfile.TarInfo(f"notMNIST_small/{'ABCDEFGHIJ'[i // 2]}/{i % 2}.png")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        if bad is not None:
            tar.addfile(tarfile.TarInfo(f"notMNIST_small/{bad}"), io.BytesIO(b""))
    return {"notMNIST_small.tar.gz": buffer.getvalue()}, pictures


@pytest.mark.network
def test_notmnist_skips_its_known_unreadable_images_with_one_warning(server, tmp_path):
    files, pictures = notmnist_archive(bad="F/QnJva2Vu.png")
    entry = entry_for(
        "tiny-notmnist", "notmnist-tar", files, 20, 0, "ABCDEFGHIJ", (28, 28, 1), known_unreadable=("F/QnJva2Vu.png",)
    )
    serve(server, entry, files)
    settings = settings_for(tmp_path, server.url)
    data = build_dataset(load_named(entry, settings), entry.name, entry.class_names)
    assert data.class_names == tuple("ABCDEFGHIJ") and data.predefined_test is None
    np.testing.assert_array_equal(data.images[..., 0], pictures)
    np.testing.assert_array_equal(data.labels, np.arange(20) // 2)
    warnings = [line for line in settings.log.getvalue().splitlines() if "unreadable" in line]  # type: ignore[union-attr]
    assert warnings == [
        "tiny-notmnist: skipped 1 unreadable images the published archive is known to hold: F/QnJva2Vu.png."
    ]


@pytest.mark.network
def test_notmnist_refuses_an_unreadable_image_it_does_not_know(server, tmp_path):
    files, _pictures = notmnist_archive(bad="C/bmV3.png")
    entry = entry_for("tiny-notmnist", "notmnist-tar", files, 20, 0, "ABCDEFGHIJ", (28, 28, 1))
    serve(server, entry, files)
    settings = settings_for(tmp_path, server.url)
    with pytest.raises(UserError, match=r"C/bmV3\.png is not a readable PNG"):
        load_named(entry, settings)
    assert CONVERTED not in leftovers(settings, entry)


@pytest.mark.network
def test_an_archive_with_other_counts_than_the_catalogue_is_refused(server, tmp_path):
    files, _pictures = notmnist_archive()
    entry = entry_for("tiny-notmnist", "notmnist-tar", files, 21, 0, "ABCDEFGHIJ", (28, 28, 1))
    serve(server, entry, files)
    settings = settings_for(tmp_path, server.url)
    with pytest.raises(UserError, match=r"holds 20 images of \(28, 28, 1\) and 20 labels, not the published 21"):
        load_named(entry, settings)
    assert CONVERTED not in leftovers(settings, entry)  # refused before anything is cached as converted


@pytest.mark.network
def test_the_listing_says_what_is_cached(digits):
    entry, settings, _files, _arrays = digits
    assert [i.name for i in datasets(settings)] == list(CATALOG)
    assert not any(i.cached for i in datasets(settings))
    load_named(entry, settings)
    (settings.root / "mnist" / CONVERTED).mkdir(parents=True)
    assert [i.name for i in datasets(settings) if i.cached] == ["mnist"]


# ------------------------------------------------------------------ the real catalogue, through the command line


def test_the_catalogue_pins_a_published_hash_or_says_why_not():
    assert {"mnist", "fashion-mnist", "kmnist", "notmnist-small", "notmnist-large", "emnist-letters", "cifar10"} <= set(
        CATALOG
    )
    assert CATALOG["mnist"].images == 70_000 and CATALOG["notmnist-small"].class_names == tuple("ABCDEFGHIJ")
    for entry in CATALOG.values():
        for f in entry.files:
            assert f.size > 0 and f.urls
            assert (f.sha256 is not None and len(f.sha256) == 64) or "none published" in entry.hash_source


@pytest.mark.parametrize("name", list(CATALOG))
def test_offline_every_named_dataset_answers_in_one_sentence_with_url_and_path(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path / "cache"))
    mirror = closed_port_url()
    monkeypatch.setenv("CONVSCOPE_DATA_MIRROR", mirror)
    assert main(["datasets", "fetch", name]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    first = CATALOG[name].files[0].name
    assert error.startswith(f"convscope datasets: error: {name}: could not download {mirror}{name}/{first}")
    assert str(tmp_path / "cache" / name / first) in error
    assert not any(p.is_file() and p.name != ".lock" for p in (tmp_path / "cache").rglob("*"))


def test_train_on_a_named_dataset_offline_exits_2_before_any_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVSCOPE_DATA_MIRROR", closed_port_url())
    code = main(["train", "--data", "notmnist-small", "--model", "cnn", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "notmnist-small: could not download" in err and "notMNIST_small.tar.gz" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.network
def test_a_corrupt_download_of_a_real_entry_is_refused_and_the_cache_stays_clean(server, tmp_path, monkeypatch, capsys):
    entry = CATALOG["mnist"]
    for f in entry.files:  # the published sizes, wrong bytes: the production SHA-256 must refuse them
        server.files[f"mnist/{f.name}"] = bytes(f.size)
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVSCOPE_DATA_MIRROR", server.url)
    assert main(["datasets", "fetch", "mnist"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "refused and deleted: its SHA-256 is" in error and entry.files[0].sha256 in error  # type: ignore[operator]
    assert not any(p.is_file() and p.name != ".lock" for p in (tmp_path / "cache").rglob("*"))


def test_the_datasets_command_lists_the_catalogue(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path / "cache"))
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["name", "images", "classes", "download", "cached", "licence"]
    assert any(line.split()[:3] == ["notmnist-small", "18,724", "10"] for line in lines)
    assert f"cache: {tmp_path / 'cache'}" in out


def test_the_cache_folder_follows_the_environment(tmp_path):
    assert CacheSettings.from_env({"CONVSCOPE_DATA_DIR": str(tmp_path)}).root == tmp_path
    assert CacheSettings.from_env({"XDG_CACHE_HOME": str(tmp_path)}).root == tmp_path / "convscope"
    assert CacheSettings.from_env({"HOME": str(tmp_path)}).root == Path.home() / ".cache" / "convscope"
    with pytest.raises(UserError, match="CONVSCOPE_DATA_TIMEOUT"):
        CacheSettings.from_env({"CONVSCOPE_DATA_TIMEOUT": "soon"})
    assert replace(CacheSettings.from_env({"CONVSCOPE_DATA_MIRROR": "http://h/p/"}), timeout=1).mirror == "http://h/p/"


def test_streaming_a_named_dataset_says_it_is_memory_mapped_already(tmp_path):
    from convscope.data.streaming import stream

    with pytest.raises(UserError, match="mnist: a named dataset is read memory-mapped .* drop --stream"):
        stream("mnist")


@pytest.mark.network
def test_train_on_a_named_dataset_downloads_it_and_prints_its_origin_and_licence(server, tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(4)
    arrays = {
        "train-images": rng.integers(0, 256, (40, 8, 8)),
        "train-labels": np.arange(40) % 2,
        "t10k-images": rng.integers(0, 256, (10, 8, 8)),
        "t10k-labels": np.arange(10) % 2,
    }
    files = {f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz": gzip.compress(idx(v)) for k, v in arrays.items()}
    entry = entry_for("tiny-course", "idx-gz", files, 40, 10, ["left", "right"], (8, 8, 1))
    serve(server, entry, files)
    monkeypatch.setitem(CATALOG, entry.name, entry)  # a catalogue entry of the test's own, beside the real ones
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVSCOPE_DATA_MIRROR", server.url)
    out = tmp_path / "run"
    assert (
        main(["train", "--data", "tiny-course", "--model", "mlp", "--epochs", "1", "--no-report", "--out", str(out)])
        == 0
    )
    captured = capsys.readouterr()
    assert "data: tiny-course (tests), https://example.invalid; licence: test." in captured.out
    assert f"tiny-course: downloading train-images-idx3-ubyte.gz (0.0 MB) from {server.url}tiny-course/" in captured.err
    assert "test split:  predefined by the file, 10 images" in captured.out
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["source"] == "tiny-course" and config["data"]["class_names"] == ["left", "right"]


@pytest.mark.network
def test_notmnist_refuses_a_member_too_large_for_a_picture_before_reading_it(server, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("notMNIST_small/A/big.png")
        info.size = 2 << 20  # zeros: a tiny download that would decompress to far more than any picture
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    files = {"notMNIST_small.tar.gz": buffer.getvalue()}
    entry = entry_for("tiny-notmnist", "notmnist-tar", files, 1, 0, "ABCDEFGHIJ", (28, 28, 1))
    serve(server, entry, files)
    with pytest.raises(UserError, match=r"A/big\.png holds 2,097,152 bytes, too many for a 28 x 28 picture"):
        load_named(entry, settings_for(tmp_path, server.url))


def test_fetch_refuses_an_unknown_name_before_downloading_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONVSCOPE_DATA_DIR", str(tmp_path / "cache"))
    assert main(["datasets", "fetch", "mnist", "nmist"]) == 2
    err = capsys.readouterr().err
    assert "'nmist' is not a named dataset; the catalogue holds: mnist, fashion-mnist" in err
    assert not (tmp_path / "cache").exists()


@pytest.mark.network
def test_the_progress_bar_shows_bytes_rate_and_time_left(digits):
    entry, settings, _files, _arrays = digits
    settings = replace(settings, progress=True)
    load_named(entry, settings)
    shown = settings.log.getvalue()  # type: ignore[union-attr]
    bars = [line for line in shown.split("\r") if line.startswith("train-images-idx3-ubyte.gz:")]
    assert "downloading" not in "".join(bars)  # notes go above the bar, never inside it
    done = bars[-1]  # what stays on screen: bytes done/total, elapsed<left, rate
    assert re.search(r"100%\|.*\| 519/519 \[\d\d:\d\d<00:00, .*B/s\]", done), done
