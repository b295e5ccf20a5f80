"""The ``"cython"`` backend: thin checking wrappers around the Cython extensions.

Same functions and signatures as :mod:`fastnn.reference` (the specification).
Each wrapper runs its contract function's check from ``_checks`` (shared with
the numba backend, so both fail alike: what would otherwise make a kernel read
or write out of bounds), casts scalars and calls the extension with flat
views.

The extensions (``fastnn/_kernels/*.pyx``, built by ``setup.py``):

========  ===============================================================
_dense    dense forward (GEMM + bias/activation epilogue) and backward
_loss     softmax cross-entropy and mean squared error, one pass per row
_update   the optimizers' updates, one fused pass over the flat buffers
_train    the fused multi-step training loop, entirely without the GIL
_gemm     fastnn's own float32 GEMM as a C entry point for the numba backend
========  ===============================================================

Importing this module loads them and refuses, with an ``ImportError`` that
says why and how to rebuild, extensions that are missing, older than their
sources (in a source checkout) or built for another kernel API version.

Threads. Every kernel releases the GIL and keeps no global state, so several
Python threads may call any function at once. The per-layer kernels run their
GEMMs on SciPy's BLAS threads. ``train_steps`` splits each SGD step over its
own threads instead (see ``_train.pyx``): as many as BLAS may use
(``fastnn.set_num_threads`` sets that), at most one per ``MIN_ROWS_PER_THREAD``
rows of a batch, each running single-threaded BLAS on its share, so that the
bias, activation, dropout, loss and update passes are parallel too, not only
the GEMMs.
Results agree across thread counts to rounding (the forward pass adds its
dot products in T shares; tested against one thread).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
from datetime import datetime
from pathlib import Path

import numpy as np

from fastnn import _machine
from fastnn._kernels import _checks
from fastnn._kernels._blas_threads import BLAS_AT_ONE_THREAD as _BLAS_AT_ONE_THREAD
from fastnn._kernels._blas_threads import (
    aligned_empty,
    input_by_columns,
    run_team,
    team_size,
)
from fastnn.activations import Activation
from fastnn.contract import FUNCTIONS
from fastnn.losses import Loss

__all__ = list(FUNCTIONS)

NAME = "cython"

#: The kernel API these wrappers are written against; every extension defines
#: the same ``KERNEL_API_VERSION``. Bump both together when a kernel's
#: arguments change.
KERNEL_API_VERSION = 8

_KERNELS_DIR = Path(__file__).resolve().parent
#: Extension -> the sources it is built from (its .pyx and every .pxd it
#: cimports), relative to ``fastnn/_kernels``.
_SOURCES = {
    "_dense": ("_dense.pyx", "_dense.pxd", "_common.pxd", "_sgemm.h"),
    "_loss": ("_loss.pyx", "_loss.pxd", "_common.pxd", "_sgemm.h"),
    "_update": ("_update.pyx", "_update.pxd", "_sgd_core.h", "_optim_core.h"),
    "_gemm": ("_gemm.pyx", "_sgemm.h"),
    "_train": (
        "_train.pyx",
        "_common.pxd",
        "_loss.pxd",
        "_update.pxd",
        "_philox.pxd",
        "_philox.h",
        "_barrier.h",
        "_sgemm.h",
    ),
}


# --------------------------------------------------------------------------- #
# Loading: missing, stale or mismatched extensions raise ImportError
# --------------------------------------------------------------------------- #
def _is_source_checkout(kernels_dir: Path = _KERNELS_DIR) -> bool:
    """True when running from a source tree (editable install or in place)."""
    root = kernels_dir.parent.parent
    return (root / "setup.py").is_file() and (root / "pyproject.toml").is_file()


def _rebuild_hint(source_checkout: bool, kernels_dir: Path = _KERNELS_DIR) -> str:
    if source_checkout:
        root = kernels_dir.parent.parent
        return (
            f"rebuild them from the source checkout {root}: pip install -e . "
            "(or python setup.py build_ext --inplace)"
        )
    return (
        "reinstall fastnn so that they are rebuilt: pip install . from a source "
        "checkout, or pip install --force-reinstall --no-binary fastnn fastnn"
    )


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _stale_reason(binary: Path, sources) -> str | None:
    """Why ``binary`` is older than one of ``sources``; None when it is not."""
    built = binary.stat().st_mtime
    for source in map(Path, sources):
        if source.is_file() and source.stat().st_mtime > built:
            return (
                f"{binary.name} (built {_when(built)}) is older than its source "
                f"{source.name} (modified {_when(source.stat().st_mtime)})"
            )
    return None


def _check_api_version(module, expected: int, hint: str) -> None:
    found = getattr(module, "KERNEL_API_VERSION", None)
    if found != expected:
        raise ImportError(
            f"the Cython extension {module.__name__} implements kernel API "
            f"version {found}, but {__name__} expects version {expected}: the "
            f"extension was built from other sources; {hint}"
        )


def _load_extension(
    name: str,
    *,
    kernels_dir: Path = _KERNELS_DIR,
    source_checkout: bool | None = None,
    expected_version: int = KERNEL_API_VERSION,
):
    """Import ``fastnn._kernels.<name>``, refusing a missing or stale build.

    ``kernels_dir`` holds the sources compared with the built file (in a
    source checkout only: an installed package has no sources to go stale).
    """
    qualname = f"fastnn._kernels.{name}"
    if source_checkout is None:
        source_checkout = _is_source_checkout(kernels_dir)
    hint = _rebuild_hint(source_checkout, kernels_dir)
    spec = importlib.util.find_spec(qualname)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    if spec is None or not str(spec.origin).endswith(suffixes):
        skipped = kernels_dir / "BUILD_SKIPPED.txt"  # written by setup.py
        try:
            why = f": the C compiler failed at install ({skipped.read_text().strip()})"
        except OSError:
            why = ""
        raise ImportError(
            f"the Cython extension {qualname} is not built (no compiled "
            f"{name}{suffixes[0]} in {kernels_dir}){why}; {hint}"
        )
    if source_checkout:
        sources = [kernels_dir / s for s in _SOURCES.get(name, (f"{name}.pyx",))]
        reason = _stale_reason(Path(spec.origin), sources)
        if reason is not None:
            raise ImportError(
                f"the Cython extension {qualname} is stale: {reason}; {hint}"
            )
    try:
        module = importlib.import_module(qualname)
    except ImportError as err:
        raise ImportError(
            f"the Cython extension {qualname} failed to import ({err}); {hint}"
        ) from err
    _check_api_version(module, expected_version, hint)
    return module


_dense = _load_extension("_dense")
_loss = _load_extension("_loss")
_update = _load_extension("_update")
_train = _load_extension("_train")
_gemm = _load_extension("_gemm")  # the own GEMM's C entry, for the numba backend

#: True when the extensions were built with FASTNN_CYTHON_DEBUG=1.
DEBUG_BUILD = bool(_dense.DEBUG_BUILD)


def own_sgemm(on: bool | None = None) -> bool:
    """Whether float32 products of the training loop may run fastnn's own GEMM
    (``_sgemm.h``: AVX2 and FMA, chosen when the extensions load, on CPUs that
    have both) rather than BLAS's sgemm. The loop uses it where each product
    runs on one thread (a step split over the cores, or BLAS at one thread);
    prediction and the per-layer kernels keep BLAS and its threads.

    ``on`` given: switch every extension to it (when the CPU can) or back to
    BLAS, for A/B measurements and tests. Not to be called while the
    backend's kernels run in another thread.
    """
    if on is not None:
        for module in (_dense, _train):
            module._own_sgemm(bool(on))
    return _dense._own_sgemm() and _train._own_sgemm()


#: The training loop's float32 GEMM: see :func:`gemm_policy`.
_gemm_policy = "auto"


def gemm_policy(policy: str | None = None) -> str:
    """Which GEMM the training loop's float32 products run on.

    * ``"auto"`` (the default): fastnn's own kernels where each product runs
      on one thread anyway (a step split over the cores, or BLAS at one
      thread) and they beat this machine's BLAS (:func:`own_gemm_pays`);
      BLAS and its threads otherwise;
    * ``"own"``: the own kernels for every product of the loop, whatever
      BLAS's thread count (RuntimeError on a CPU without AVX2 and FMA);
    * ``"blas"``: BLAS's sgemm throughout.

    Prediction and the per-layer kernels keep BLAS under every policy. For
    A/B measurements and for tests, which hold both paths to the reference on
    any machine and check the path taken with :func:`gemm_counts`. Not to be
    called while the backend's kernels run in another thread.
    """
    global _gemm_policy
    if policy is None:
        return _gemm_policy
    _checks.check_gemm_policy(policy)
    if policy == "own" and not own_sgemm(True):  # the CPU cannot: nothing changed
        raise RuntimeError(
            "policy: 'own' needs fastnn's own GEMM, which runs on x86-64 CPUs "
            "with AVX2 and FMA only; this CPU or build has none"
        )
    own_sgemm(policy != "blas")
    _gemm_policy = policy
    return _gemm_policy


#: OpenBLAS's kernels for CPUs with AVX-512 (threadpoolctl's ``architecture``,
#: lower case). Where BLAS runs one of them, its one-thread sgemm beats
#: fastnn's AVX2 kernels at every product of the training loop (1.4-1.8x on
#: an AVX-512 Xeon with OpenBLAS's SkylakeX kernels; docs/performance.md),
#: except on a CPU that runs AVX-512 on 256-bit units (AMD Zen 4:
#: ``fastnn._machine.avx512_on_256_bit_units``), where the own kernels took
#: 0.85x BLAS's L64 and L256 epochs.
AVX512_BLAS_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})
_blas_wins: bool | None = None


def blas_kernels() -> list[str]:
    """``"openblas:SkylakeX"``-style names of the loaded BLAS libraries'
    kernels, as threadpoolctl reports them."""
    return [
        f"{lib.internal_api}:{getattr(lib, 'architecture', None) or '?'}"
        for lib in _BLAS_AT_ONE_THREAD.libs()
    ]


def own_gemm_pays() -> bool:
    """Whether the ``auto`` policy runs the loop's float32 products on
    fastnn's own kernels: the CPU can run them (AVX2 and FMA, :func:`own_sgemm`)
    and BLAS is an OpenBLAS on kernels without AVX-512 (Haswell, Zen, ...),
    or on AVX-512 kernels on a CPU that runs AVX-512 at AVX2's rate (Zen 4),
    where the own kernels measured faster. The BLAS side is decided once, from
    the kernels OpenBLAS chose for this CPU (``OPENBLAS_CORETYPE`` included)
    and the CPU's vendor and family; MKL, BLIS or an unknown BLAS keep BLAS.
    Where ``fastnn backends --measure`` timed both on this machine
    (:mod:`fastnn.autoselect`), its choice decides instead."""
    return own_sgemm() and own_gemm_beats_blas()


def own_gemm_beats_blas() -> bool:
    """The rule of :func:`own_gemm_pays` without this backend's switch
    (:func:`own_sgemm`): the measurement where there is one, else BLAS's
    kernels and the CPU. The numba backend's loops follow it too."""
    measured, _ = _measured_gemm()
    if measured is not None:
        return measured == "own"
    global _blas_wins
    if _blas_wins is None:
        kernels = blas_kernels()
        beaten = set() if _machine.avx512_on_256_bit_units() else AVX512_BLAS_KERNELS
        _blas_wins = not kernels or any(
            not k.startswith("openblas:")
            or k.split(":", 1)[1].lower() in beaten | {"?"}
            for k in kernels
        )
    return not _blas_wins


def _measured_gemm() -> tuple[str | None, str]:
    """The GEMM ``fastnn backends --measure`` found faster here, if any."""
    from fastnn import autoselect
    from fastnn.backends import BACKEND_NAMES

    return autoselect.measured_gemm(BACKEND_NAMES)


def describe() -> str:
    """One line for ``fastnn backends``: the training loop's float32 GEMM here
    and why (:func:`gemm_policy`, :func:`own_gemm_pays`)."""
    kernels = ", ".join(blas_kernels()) or "no BLAS found"
    if _gemm_policy != "auto":
        return f"float32 GEMM in fit: forced {_gemm_policy!r} (BLAS: {kernels})"
    measured, why = _measured_gemm()
    if measured is not None and own_sgemm():
        which = "fastnn's own AVX2 kernels" if measured == "own" else "BLAS"
        return f"float32 GEMM in fit: {which} ({why}; BLAS: {kernels})"
    if own_gemm_pays():
        beaten = (
            "AVX-512 kernels on a CPU that runs AVX-512 on 256-bit units"
            if _machine.avx512_on_256_bit_units()
            else "non-AVX-512 kernels"
        )
        return (
            f"float32 GEMM in fit: fastnn's own AVX2 kernels (they beat BLAS's "
            f"{beaten}: {kernels})"
        )
    why = "this CPU lacks AVX2/FMA" if not own_sgemm() else "it beats the own kernels"
    return f"float32 GEMM in fit: BLAS ({kernels}; {why})"


def gemm_counts(reset: bool = False) -> dict[str, int]:
    """How many products ran on each path since the last reset, over every
    extension: ``{"own": ..., "sgemm": ..., "dgemm": ...}`` (fastnn's own
    float32 kernels, BLAS's sgemm, BLAS's dgemm). ``reset``: zero the counts
    after reading them. Tests read it to observe which GEMM ran."""
    totals = [0, 0, 0]
    for module in (_dense, _train):
        for i, n in enumerate(module._gemm_counts(reset)):
            totals[i] += n
    return dict(zip(("own", "sgemm", "dgemm"), totals, strict=True))


_EMPTY = {dt: np.empty(0, dt) for dt in _checks.FLOAT_DTYPES}
_NO_LABELS = np.empty(0, np.int64)


# --------------------------------------------------------------------------- #
# The backend contract
# --------------------------------------------------------------------------- #
def dense_forward(X, W, b, activation, A_out):
    """Same contract as ``fastnn.reference.dense_forward``."""
    _, code = _checks.check_dense_forward(X, W, b, activation, A_out)
    n, n_in = X.shape
    n_out = W.shape[1]
    _dense.dense_forward(
        X.reshape(-1), W.reshape(-1), b, code, A_out.reshape(-1), n, n_in, n_out
    )
    return A_out


def dense_backward(dA, X, W, A, activation, dW_out, db_out, dX_out=None):
    """Same contract as ``fastnn.reference.dense_backward``."""
    dtype, code = _checks.check_dense_backward(
        dA, X, W, A, activation, dW_out, db_out, dX_out
    )
    n, n_out = dA.shape
    n_in = X.shape[1]
    dX = dX_out.reshape(-1) if dX_out is not None else _EMPTY[dtype]
    # dZ needs scratch: dA is not modified. A linear layer uses dA as dZ.
    dZ = _EMPTY[dtype] if code == Activation.LINEAR else np.empty(dA.size, dtype)
    _dense.dense_backward(
        dA.reshape(-1),
        dZ,
        X.reshape(-1),
        W.reshape(-1),
        A.reshape(-1),
        code,
        dW_out.reshape(-1),
        db_out,
        dX,
        n,
        n_in,
        n_out,
    )


def softmax_cross_entropy(Z, labels, dZ_out):
    """Same contract as ``fastnn.reference.softmax_cross_entropy``."""
    labels = _checks.check_softmax_cross_entropy(Z, labels, dZ_out)
    n, k = Z.shape
    if n == 0:
        return float("nan")  # the mean over no samples, as the reference
    return _loss.softmax_cross_entropy(Z.reshape(-1), labels, dZ_out.reshape(-1), n, k)


def mean_squared_error(A, Y, dA_out):
    """Same contract as ``fastnn.reference.mean_squared_error``."""
    _checks.check_mean_squared_error(A, Y, dA_out)
    if A.size == 0:
        return float("nan")
    return _loss.mean_squared_error(A.reshape(-1), Y.reshape(-1), dA_out.reshape(-1))


def update(plan, state, learning_rate):
    """Same contract as ``fastnn.reference.update``."""
    scalars = _checks.check_update(plan, state, learning_rate)
    sq = _update.update(
        state.params,
        state.grads,
        state.slots,
        int(plan.optimizer),
        plan.hyper,
        scalars,
        plan.sorted_spans,
        plan.spans_disjoint,
    )
    state.step += 1
    return float(sq)


#: Rows of a batch per training thread, at least. Two threads of 32 rows beat
#: one thread on the S and L networks at batch 64 (docs/performance.md);
#: thinner shares were not measured. Results do not depend on it beyond rounding.
MIN_ROWS_PER_THREAD = 32
#: Upper bound on training threads (only 2 cores were measured).
MAX_TRAIN_THREADS = 8
#: Tests set this to force a thread count (None: chosen as below).
TRAIN_THREADS: int | None = None
#: The thread count of the latest ``train_steps`` call (see last_train_threads).
_last_train_threads = 0


def last_train_threads() -> int:
    """How many threads the latest ``train_steps`` call split its steps over
    (0 before any): tests read it to observe that the split path ran."""
    return _last_train_threads


#: Tests set this to force how the split loop splits the input layer (None:
#: ``_blas_threads.input_by_columns``'s rule).
SPLIT_INPUT_BY_COLUMNS: bool | None = None
_last_split_by_columns = False


def last_split_by_columns() -> bool:
    """Whether the latest ``train_steps`` call split its input layer by its
    output columns (``_train.pyx``'s ``input_by_columns``)."""
    return _last_split_by_columns


def _input_by_columns(plan, n_threads: int) -> bool:
    """``input_by_columns`` for a split call, where the loop can: the input
    layer's W decayed whole or not at all (its private block is one span)."""
    layout = plan.layout
    if n_threads == 1 or not input_by_columns(
        layout, plan.drop_thresholds, SPLIT_INPUT_BY_COLUMNS
    ):
        return False
    lo = int(layout[0, 2])
    hi = lo + int(layout[0, 0] * layout[0, 1])
    spans = np.asarray(plan.sorted_spans).reshape(-1, 2)
    covered = int(
        np.clip(
            np.minimum(spans[:, 1], hi) - np.maximum(spans[:, 0], lo), 0, None
        ).sum()
    )
    return covered in (0, hi - lo)


def _train_threads(rows: int, update_per_layer: bool, layout, loss) -> int:
    """How many threads one ``train_steps`` call with batches of up to ``rows``
    samples splits its steps over."""
    acts = layout[:, 4].tolist()
    if loss == Loss.CROSS_ENTROPY:
        acts[-1] = Activation.LINEAR  # the softmax is fused into the loss
    if not update_per_layer or Activation.SOFTMAX in acts:
        # The general update runs once, after the backward pass; a layer's
        # softmax needs whole rows of A, and the threads own its columns.
        return 1
    return team_size(rows, TRAIN_THREADS, MIN_ROWS_PER_THREAD, MAX_TRAIN_THREADS)


def train_threads_for(batch_size: int) -> int:
    """Threads ``fit`` splits each step over at this batch size (a dense
    network without a layer softmax, as ``fastnn bench`` records it)."""
    layout = np.array([[1, 1, 0, 1, int(Activation.RELU)]])
    return _train_threads(batch_size, True, layout, Loss.CROSS_ENTROPY)


def train_steps(plan, data, state, order, begin, end, learning_rates, losses_out):
    """Same contract as ``fastnn.reference.train_steps``, fused in compiled code."""
    a = _checks.check_train_steps(
        plan, data, state, order, begin, end, learning_rates, losses_out
    )
    if a is None:
        return 0
    dtype = state.dtype
    # each layer updated right after its backward pass, by each thread
    per_layer = plan.spans_disjoint and plan.layers_tile
    layout = plan.layout
    ce = plan.loss == Loss.CROSS_ENTROPY
    bs, n, k = plan.batch_size, data.n, int(layout[-1, 1])
    rows = min(bs, n)  # the largest batch
    n_threads = _train_threads(rows, per_layer, layout, plan.loss)
    by_columns = _input_by_columns(plan, n_threads)
    global _last_train_threads, _last_split_by_columns
    _last_train_threads = n_threads
    _last_split_by_columns = by_columns
    A_all = aligned_empty(rows * int(layout[:, 1].sum()), dtype)
    dropped = rows * int(layout[1:, 0][plan.dropout[1:] > 0].sum())
    sync = np.zeros(3, np.int64)  # the barrier (_barrier.h)
    args = (
        data.X.reshape(-1),
        n,
        data.labels if ce else _NO_LABELS,
        _EMPTY[dtype] if ce else data.Y.reshape(-1),
        a.order,
        bs,
        int(begin),
        int(end),
        state.params,
        state.grads,
        state.slots,
        state.step,
        layout,
        plan.loss,
        int(plan.optimizer),
        plan.hyper,
        a.scalars,
        plan.sorted_spans,
        plan.spans_disjoint,
        per_layer,
        plan.drop_thresholds,
        plan.drop_scales,
        plan.seed,
        a.out,
    )
    shared = (  # scratch shared by the threads (see _train.pyx)
        np.empty(rows * int(layout[0, 0]), dtype),  # the gathered batch
        np.empty(rows if ce else 0, np.int64),  # its labels
        np.empty(0 if ce else rows * k, dtype),  # its targets
        A_all,
        aligned_empty(A_all.size, dtype),  # dA, then dZ in place
        np.empty(dropped, dtype),  # the dropped layer inputs
        np.empty(dropped, np.uint8),  # their masks
        # the forward pass's shares of threads 1 .. T - 1, each layer's own
        np.empty((n_threads - 1) * rows * int(layout[:, 1].sum()), dtype),
        sync,
        np.zeros(3 * n_threads, np.float64),  # loss, L2 and gradient parts
        np.full(2 * n_threads, -1, np.int64),  # errors
    )

    # fastnn's own GEMM runs on the calling thread only: worth it where each
    # product runs on one thread anyway (split steps, or BLAS at one thread)
    # and BLAS has no AVX-512 kernels here; one training thread with a
    # multithreaded BLAS keeps BLAS.
    own_gemm = _gemm_policy == "own" or (
        (n_threads > 1 or _BLAS_AT_ONE_THREAD.threads() == 1)
        and (_gemm_policy != "auto" or own_gemm_pays())
    )

    def call(tid):
        return _train.train_steps(*args, tid, n_threads, own_gemm, by_columns, *shared)

    if n_threads == 1:
        done = call(0)
    else:
        done = run_team(call, n_threads, lambda: _train.abort(sync))
    state.step += done
    if a.out is not losses_out:
        losses_out[:done] = a.out[:done]
    return done
