"""Saving and loading models: one ``.npz`` file, no pickle, written atomically.

File layout (every member a plain NumPy array; strings are unicode arrays):

========== =================================================================
member     content
========== =================================================================
format     ``"fastnn.Sequential"``
version    format version (int), currently 2
config     JSON: layers, input_dim, loss, optimizer, dtype, seed, metrics
params     the flat parameter buffer (layout: ``fastnn.reference``)
slots      the optimizer's slots (S, P), one row per name of the
           optimizer's ``slot_names()`` (version 1 files hold SGD's
           ``velocity`` (P,) instead, read as one slot)
state      JSON: completed epochs and steps, the learning-rate scale
           (``ReduceLROnPlateau``), the shuffling RNG's state and
           the training history so far (``History.epoch`` and
           ``History.history``), so that a resumed run's history covers every
           epoch
========== =================================================================

This module reads and writes files only; building a model from one is
:func:`fastnn.load` (``fastnn.model``). Loading reads every member's header
first and checks names, dtypes and shapes against the architecture before
reading any data, so a damaged, truncated or hostile file is refused with a
``ValueError`` before any large allocation.
``allow_pickle=False`` throughout.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

FORMAT = "fastnn.Sequential"
VERSION = 2
_COMMON = {"format", "version", "config", "params", "state"}
_MEMBERS = {1: _COMMON | {"velocity"}, 2: _COMMON | {"slots"}}
_MAX_SLOTS = 3
_MAX_JSON = 1 << 20


def atomic_write(path: str | os.PathLike, write, *, mode: int | None = None) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it,
    then rename it over ``path``: readers see the old file or the new, never
    half of one.

    ``mode``: the file's permission bits, exactly (e.g. ``0o644`` for a cache
    other users may read whatever the umask); by default ``0o666`` less the
    umask, as :func:`open` creates files.
    """
    path = Path(path)
    # Not mkstemp: its 0600 mode would outlive the rename; 0666 honours the umask.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(model, path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (conventionally ``*.npz``) atomically."""
    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    state = {
        "epoch": model.epoch,
        "step": model.step,
        "learning_rate_scale": model.optimizer.learning_rate_scale,
        "callbacks": model.callback_states,
        "shuffle_rng": model.shuffle_rng.bit_generator.state,
        "history": None if model.history is None else model.history.to_state(),
    }
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION, np.int64),
        "config": np.array(json.dumps(model.get_config())),
        "params": model.params,
        "slots": model.slots,
        "state": np.array(json.dumps(state)),
    }
    atomic_write(path, lambda f: np.savez(f, **arrays))


def invalid_file(path, why: str) -> InvalidModelFile:
    """The error for a file that is not a valid fastnn model, saying why."""
    return InvalidModelFile(
        f"path: {str(path)!r} is not a valid fastnn model file: {why}"
    )


def _headers(path) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """``{member: (shape, dtype, data bytes available)}`` without reading data."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if name not in _MEMBERS[1] | _MEMBERS[2]:
                raise invalid_file(path, f"unexpected member {info.filename!r}")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise invalid_file(path, f"unsupported .npy version {version}")
                data_bytes = info.file_size - f.tell()
            if dtype.hasobject:
                raise invalid_file(
                    path,
                    f"member {name!r} holds Python objects (pickle); "
                    "refusing to load it",
                )
            out[name] = (shape, dtype, data_bytes)
    version = 2 if "slots" in out else 1
    missing = _MEMBERS[version] - set(out)
    if missing:
        raise invalid_file(path, f"missing members {sorted(missing)}")
    if set(out) - _MEMBERS[version]:
        raise invalid_file(
            path, f"unexpected members {sorted(set(out) - _MEMBERS[version])}"
        )
    return out


class InvalidModelFile(ValueError):
    """A file that is not a valid fastnn model (the message says why)."""


class SavedModel(NamedTuple):
    """A model file's contents, checked (:func:`read`)."""

    config: dict  #: layers, input_dim, loss, optimizer, dtype, seed, metrics
    state: dict  #: epoch, step, shuffle_rng, history
    params: np.ndarray
    slots: np.ndarray  #: (S, P)


def read(path: str | os.PathLike) -> SavedModel:
    """Read and check a model or checkpoint file written by :func:`save`;
    any failure is one ``ValueError`` (:class:`InvalidModelFile`) saying why.
    Building a model from it is :func:`fastnn.load`'s job."""
    try:
        return _read_checked(path)
    except InvalidModelFile:
        raise
    except FileNotFoundError as err:
        raise invalid_file(path, "no such file") from err
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        NotImplementedError,
        UnicodeError,
        OverflowError,
        zlib.error,
        json.JSONDecodeError,
    ) as err:
        raise invalid_file(path, f"{type(err).__name__}: {err}") from err


def _read_checked(path) -> SavedModel:
    headers = _headers(path)
    for name in ("format", "config", "state"):
        shape, dtype, nbytes = headers[name]
        if shape != () or dtype.kind != "U" or nbytes > _MAX_JSON:
            raise invalid_file(path, f"member {name!r} is not a short string")
    with np.load(path, allow_pickle=False) as data:
        if str(data["format"]) != FORMAT:
            raise invalid_file(
                path, f"format is {str(data['format'])!r}, expected {FORMAT!r}"
            )
        version = int(data["version"])
        if version != (2 if "slots" in headers else 1):
            raise invalid_file(
                path, f"format version {version}; this fastnn reads 1 and {VERSION}"
            )
        config = json.loads(str(data["config"]))
        state = json.loads(str(data["state"]))
        n_params = _expected_params(config)
        dtype = np.dtype(config["dtype"])
        slots_name = "slots" if version == 2 else "velocity"
        for name in ("params", slots_name):
            shape, dt, nbytes = headers[name]
            ok = (
                shape == (n_params,)
                if name != "slots"
                else len(shape) == 2
                and shape[1] == n_params
                and 1 <= shape[0] <= _MAX_SLOTS
            )
            size = int(np.prod(shape)) if ok else 0
            if not ok or dt != dtype or nbytes < size * dt.itemsize:
                raise invalid_file(
                    path,
                    f"member {name!r} has shape {shape} and dtype {dt}; "
                    f"the architecture needs {dtype} "
                    + (f"({n_params},)" if name != "slots" else f"(S, {n_params})"),
                )
        params = data["params"]
        slots = data[slots_name].reshape(-1, n_params)
    if not (np.isfinite(params).all() and np.isfinite(slots).all()):
        raise invalid_file(path, "parameters contain NaN or inf")
    return SavedModel(config, state, params, slots)


def _expected_params(config) -> int:
    try:
        n_in = int(config["input_dim"])
        total = 0
        for layer in config["layers"]:
            if layer.get("class") == "Dropout":
                continue
            units = int(layer["units"])
            total += n_in * units + (units if layer.get("use_bias", True) else 0)
            n_in = units
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"config is malformed: {err}") from err
    if total <= 0 or total > 1 << 34:
        raise ValueError(f"config describes {total} parameters")
    return total


def read_state(path: str | os.PathLike) -> dict:
    """The training state saved in a model or checkpoint file, checked:
    ``{"epoch": completed epochs, "step": completed steps, ...}``."""
    return read(path).state
