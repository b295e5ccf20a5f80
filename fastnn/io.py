"""Saving and loading models: one ``.npz`` file, no pickle, written atomically.

File layout (every member a plain NumPy array; strings are unicode arrays):

========== =================================================================
member     content
========== =================================================================
format     ``"fastnn.Sequential"``
version    format version (int), currently 1
config     JSON: layers, input_dim, loss, optimizer, dtype, seed, metrics
params     the flat parameter buffer (layout: ``fastnn.reference``)
velocity   the SGD momentum buffer, same shape
state      JSON: completed epochs and steps, the shuffling RNG's state and
           the training history so far (``History.epoch`` and
           ``History.history``), so that a resumed run's history covers every
           epoch
========== =================================================================

Loading reads every member's header first and checks names, dtypes and shapes
against the architecture before reading any data, so a damaged, truncated or
hostile file is refused with a ``ValueError`` before any large allocation.
``allow_pickle=False`` throughout.
"""

from __future__ import annotations

import json
import os
import secrets
import zipfile
import zlib
from pathlib import Path

import numpy as np

FORMAT = "fastnn.Sequential"
VERSION = 1
_MEMBERS = {"format", "version", "config", "params", "velocity", "state"}
_MAX_JSON = 1 << 20


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, fsync it,
    then rename it over ``path``: readers see the old file or the new, never
    half of one."""
    path = Path(path)
    # Not mkstemp: its 0600 mode would outlive the rename; 0666 honours the umask.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
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
        "shuffle_rng": model.shuffle_rng.bit_generator.state,
        "history": _history_state(getattr(model, "history", None)),
    }
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION, np.int64),
        "config": np.array(json.dumps(model.get_config())),
        "params": model.params,
        "velocity": model.velocity,
        "state": np.array(json.dumps(state)),
    }
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _history_state(history) -> dict | None:
    """``History`` as JSON-ready lists: the keys with a number for every
    epoch (a value a user callback logs only sometimes, or logs as something
    else, is left out)."""
    if history is None:
        return None
    logs = {}
    for key, values in history.history.items():
        if len(values) == len(history.epoch) and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            for v in values
        ):
            logs[str(key)] = [float(v) for v in values]
    return {"epoch": [int(e) for e in history.epoch], "history": logs}


def _history_from_state(state):
    """The ``History`` saved in ``state`` (an empty one for files written
    before histories were saved); ``ValueError`` when it is malformed."""
    from fastnn.callbacks import History

    history = History()
    saved = state.get("history")
    if saved is None:
        return history
    epochs = saved["epoch"]
    logs = saved["history"]
    if not isinstance(epochs, list) or not all(
        isinstance(e, int) and 0 <= e < int(state["epoch"]) for e in epochs
    ):
        raise ValueError("history.epoch is not a list of completed epoch numbers")
    if not isinstance(logs, dict) or not all(
        isinstance(v, list)
        and len(v) == len(epochs)
        and all(isinstance(x, (int, float)) for x in v)
        for v in logs.values()
    ):
        raise ValueError("history.history is not a dict of lists, one value an epoch")
    history.epoch = list(epochs)
    history.history = {str(k): [float(x) for x in v] for k, v in logs.items()}
    return history


def _bad(path, why: str) -> ValueError:
    return _Invalid(f"path: {str(path)!r} is not a valid fastnn model file: {why}")


def _headers(path) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """``{member: (shape, dtype, data bytes available)}`` without reading data."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename.removesuffix(".npy")
            if name not in _MEMBERS:
                raise _bad(path, f"unexpected member {info.filename!r}")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise _bad(path, f"unsupported .npy version {version}")
                data_bytes = info.file_size - f.tell()
            if dtype.hasobject:
                raise _bad(
                    path,
                    f"member {name!r} holds Python objects (pickle); "
                    "refusing to load it",
                )
            out[name] = (shape, dtype, data_bytes)
    missing = _MEMBERS - set(out)
    if missing:
        raise _bad(path, f"missing members {sorted(missing)}")
    return out


class _Invalid(ValueError):
    """A file that is not a valid fastnn model (the message says why)."""


def _read(path):
    """Read and check a model file; any failure is one ``ValueError`` saying why."""
    try:
        return _read_checked(path)
    except _Invalid:
        raise
    except FileNotFoundError as err:
        raise _bad(path, "no such file") from err
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
        raise _bad(path, f"{type(err).__name__}: {err}") from err


def _read_checked(path):
    from fastnn.model import Sequential

    headers = _headers(path)
    for name in ("format", "config", "state"):
        shape, dtype, nbytes = headers[name]
        if shape != () or dtype.kind != "U" or nbytes > _MAX_JSON:
            raise _bad(path, f"member {name!r} is not a short string")
    with np.load(path, allow_pickle=False) as data:
        if str(data["format"]) != FORMAT:
            raise _bad(path, f"format is {str(data['format'])!r}, expected {FORMAT!r}")
        version = int(data["version"])
        if version != VERSION:
            raise _bad(path, f"format version {version}; this fastnn reads {VERSION}")
        config = json.loads(str(data["config"]))
        state = json.loads(str(data["state"]))
        n_params = _expected_params(config)
        dtype = np.dtype(config["dtype"])
        for name in ("params", "velocity"):
            shape, dt, nbytes = headers[name]
            if shape != (n_params,) or dt != dtype or nbytes < n_params * dt.itemsize:
                raise _bad(
                    path,
                    f"member {name!r} has shape {shape} and dtype {dt}; "
                    f"the architecture needs ({n_params},) {dtype}",
                )
        params = data["params"]
        velocity = data["velocity"]
    if not (np.isfinite(params).all() and np.isfinite(velocity).all()):
        raise _bad(path, "parameters contain NaN or inf")
    return config, state, params, velocity, Sequential


def _expected_params(config) -> int:
    try:
        n_in = int(config["input_dim"])
        total = 0
        for layer in config["layers"]:
            units = int(layer["units"])
            total += n_in * units + (units if layer.get("use_bias", True) else 0)
            n_in = units
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"config is malformed: {err}") from err
    if total <= 0 or total > 1 << 34:
        raise ValueError(f"config describes {total} parameters")
    return total


def _apply_state(model, state, params, velocity) -> None:
    history = _history_from_state(state)
    model.params[...] = params
    model.velocity[...] = velocity
    model.epoch = int(state["epoch"])
    model.step = int(state["step"])
    model.shuffle_rng.bit_generator.state = state["shuffle_rng"]
    model.history = history


def load(path: str | os.PathLike, backend: str | None = None):
    """Load a model written by :meth:`fastnn.Sequential.save`.

    Predictions of the loaded model equal the saved model's bit for bit on the
    same backend; training continues exactly where it stopped.
    """
    config, state, params, velocity, Sequential = _read(path)
    try:
        model = Sequential.from_config(config, backend=backend)
        _apply_state(model, state, params, velocity)
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(path, f"{type(err).__name__}: {err}") from err
    return model


def read_state(path: str | os.PathLike) -> dict:
    """The training state saved in a model or checkpoint file, checked:
    ``{"epoch": completed epochs, "step": completed steps, ...}``."""
    return _read(path)[1]


def restore_state(model, path: str | os.PathLike) -> None:
    """Give ``model`` the parameters and training state saved in ``path``,
    its training history (``model.history``) included.

    The file must hold the same architecture, loss and dtype, trained with
    the same optimizer (momentum, Nesterov, weight decay: the saved momentum
    buffer means nothing to another); the learning rate or its schedule may
    differ, to train further at another rate.
    """
    config, state, params, velocity, _ = _read(path)
    mine = model.get_config()
    for key in ("layers", "input_dim", "loss", "dtype"):
        if config.get(key) != mine[key]:
            raise ValueError(
                f"resume: {str(path)!r} holds a different model ({key} is "
                f"{config.get(key)!r}, this model has {mine[key]!r})"
            )
    saved_opt = config.get("optimizer") or {}
    for key in ("momentum", "nesterov", "weight_decay"):
        if saved_opt.get(key) != mine["optimizer"][key]:
            raise ValueError(
                f"resume: {str(path)!r} was trained with another optimizer "
                f"({key} is {saved_opt.get(key)!r}, this model's is "
                f"{mine['optimizer'][key]!r}); resume with the optimizer it "
                "was saved with"
            )
    try:
        _apply_state(model, state, params, velocity)
    except (KeyError, TypeError, ValueError) as err:
        raise _bad(path, f"{type(err).__name__}: {err}") from err
