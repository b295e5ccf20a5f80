"""Backend registry: name -> kernel module, resolution order, availability.

A backend is a module implementing the contract of :mod:`fastnn.contract`,
documented in ``fastnn.reference`` (``dense_forward``, ``dense_backward``,
``softmax_cross_entropy``, ``mean_squared_error``, ``update``,
``train_steps``). Modules are imported lazily, on first use.

Selection, first match wins: the model's ``backend=`` argument, an enclosing
``with fastnn.use_backend(name):`` block, the ``FASTNN_BACKEND`` environment
variable, then ``"auto"``: the backend measured fastest on this machine where
``fastnn backends --measure`` has measured it (:mod:`fastnn.autoselect`), else
the first that loads of ``AUTO_ORDER``. An explicit request never falls back
silently.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from types import ModuleType

__all__ = [
    "BackendUnavailableError",
    "auto_order",
    "available_backends",
    "get_backend",
    "resolve_backend_name",
    "show_backends",
    "use_backend",
]

_MODULES = {
    "numpy": "fastnn.reference",
    "numba": "fastnn._kernels.numba_backend",
    "cython": "fastnn._kernels.cython_backend",
}
_HOW_TO_FIX = {
    "numpy": "reinstall fastnn: pip install --force-reinstall fastnn",
    "numba": 'install the numba extra: pip install "fastnn[numba]"',
    "cython": (
        "build the Cython extensions: pip install . (or pip install -e .) from a "
        "source checkout, with a C compiler available"
    ),
}
#: Order tried by ``backend="auto"`` where no measurement holds for this
#: machine: fastest first by the geometric mean of the MNIST epochs measured
#: side by side (paired) in docs/peers.md (numba 0.192 / 1.942 / 1.705 s,
#: cython 0.187 / 1.931 / 1.654 s, numpy 0.458 / 4.251 / 2.349 s on S / L64 /
#: L256), numba's counted ``JIT_ALLOWANCE`` times slower for its compilation at
#: first use (14-16 s with an empty cache, which cython's ahead-of-time build
#: never pays). tests/model/test_backend_selection.py holds this order to
#: that table.
AUTO_ORDER = ("cython", "numba", "numpy")
#: What a backend compiled at first use (numba) concedes in ``AUTO_ORDER``.
JIT_ALLOWANCE = 1.10
#: Why ``auto`` takes the first of ``AUTO_ORDER`` that loads, for the user.
AUTO_REASON = (
    "the first that loads of " + ", ".join(AUTO_ORDER) + ": fastest first, as "
    "measured per MNIST epoch in fastnn's docs/peers.md, numba's time counted "
    "10% more for its compilation at first use"
)
BACKEND_NAMES = tuple(_MODULES)

_local = threading.local()


class BackendUnavailableError(ImportError):
    """A known backend cannot be loaded; the message says why and how to fix it."""


def _check_name(name: object, allow_auto: bool = True) -> str:
    valid = BACKEND_NAMES + (("auto",) if allow_auto else ())
    if not isinstance(name, str) or name.lower() not in valid:
        raise ValueError(
            f"backend: expected one of {', '.join(map(repr, valid))}; received {name!r}"
        )
    return name.lower()


def _load(name: str) -> ModuleType:
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as err:
        raise BackendUnavailableError(
            f"backend {name!r} is not available: {err}. To fix: {_HOW_TO_FIX[name]}."
        ) from err
    return module


def get_backend(name: str | None = None) -> ModuleType:
    """The kernel module of backend ``name`` (``None``: the current default)."""
    name = resolve_backend_name(name)
    return _load(name)


def resolve_backend_name(name: str | None = None) -> str:
    """Resolve ``name`` (or the context/environment default) to a concrete name."""
    if name is None:
        stack = getattr(_local, "stack", None)
        name = stack[-1] if stack else os.environ.get("FASTNN_BACKEND", "auto")
    name = _check_name(name)
    if name != "auto":
        return name
    for candidate in auto_order()[0]:
        try:
            _load(candidate)
        except BackendUnavailableError:
            continue
        return candidate
    raise BackendUnavailableError("no backend could be loaded")  # pragma: no cover


def auto_order() -> tuple[tuple[str, ...], str]:
    """``(backends in the order auto tries them, why)``: fastest first as
    measured on this machine (:mod:`fastnn.autoselect`), the backends the
    measurement did not score after them in ``AUTO_ORDER``'s order; without
    a measurement for this machine, ``AUTO_ORDER``."""
    from fastnn import autoselect

    measured, why = autoselect.measured_choice(BACKEND_NAMES)
    if measured is None:
        hint = "; fastnn backends --measure measures it"
        return AUTO_ORDER, f"{why}: {AUTO_REASON}{hint}"
    rest = tuple(n for n in AUTO_ORDER if n not in measured)
    return tuple(measured) + rest, why


@contextlib.contextmanager
def use_backend(name: str):
    """``with fastnn.use_backend("numba"):`` sets the default for new models."""
    _check_name(name)
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def available_backends() -> dict[str, str | None]:
    """``{name: None if it loads else the reason it does not}``."""
    report = {}
    for name in BACKEND_NAMES:
        try:
            _load(name)
        except BackendUnavailableError as err:
            report[name] = str(err)
        else:
            report[name] = None
    return report


def show_backends(file=None) -> dict[str, str | None]:
    """Print each backend, whether it is available, and why not, then which
    one ``auto`` picks and why; return the report."""
    report = available_backends()
    for name, reason in report.items():
        status = "available" if reason is None else f"unavailable: {reason}"
        print(f"{name:8s} {status}", file=file)
        describe = getattr(_load(name), "describe", None) if reason is None else None
        if describe is not None:
            print(f"{'':8s} {describe()}", file=file)
    order, why = auto_order()
    picked = next((name for name in order if report[name] is None), None)
    if picked is not None:
        print(f"{'auto':8s} -> {picked} ({why})", file=file)
    return report
