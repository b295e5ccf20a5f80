"""Training plots: history curves, confusion matrix, predictions on digit images.

Design: matplotlib is imported inside the functions, never at import time, and
only its object-oriented API is used -- a ``Figure`` attached to an Agg canvas
-- so plotting neither needs a display nor changes the global backend or the
pyplot state of the caller (a Jupyter session keeps its own backend). Every
image is written atomically through :func:`fastnn.io.atomic_write`: a reader
sees the previous PNG or the new one, never half of one.

Only :func:`confusion_matrix` is pure NumPy and needs no extra package.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastnn import io

__all__ = [
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_digit_predictions",
    "plot_history",
    "plot_sweep",
    "require_matplotlib",
]

_DPI = 100


def require_matplotlib() -> None:
    """Raise ImportError (with the fix) unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: "
            'pip install "fastnn[plots]"'
        ) from err


def _new_figure(width: float, height: float, layout: str | None = None, **margins):
    """A Figure on a private Agg canvas (no pyplot, no global backend switch).

    Margins are fixed (``Figure.subplots_adjust``) rather than computed by a
    layout engine where the plots have known contents (a layout engine costs an
    extra draw pass); ``layout="constrained"`` where labels vary with the data.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    if margins:
        fig.subplots_adjust(**margins)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"path: the folder {str(path.parent)!r} does not exist; create it first"
        )
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a folder; expected a file")
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))
    return path


def confusion_matrix(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``.

    Rows are true classes, columns predicted classes (scikit-learn's
    convention); ``C.sum() == len(y_true)`` and ``trace(C)`` counts the correct
    predictions. Returns int64 ``(n_classes, n_classes)``.
    """
    if (
        isinstance(n_classes, bool)
        or not isinstance(n_classes, (int, np.integer))
        or n_classes < 1
    ):
        raise ValueError(f"n_classes: expected a positive int; received {n_classes!r}")
    n_classes = int(n_classes)
    arrays = []
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        a = np.asarray(y)
        if a.ndim != 1:
            raise ValueError(
                f"{name}: expected a 1-D array of class indices; "
                f"received shape {a.shape}"
            )
        if a.size and a.dtype.kind not in "iu":
            if a.dtype.kind != "f" or not np.all(a == np.round(a)):
                raise TypeError(
                    f"{name}: expected integer class indices; received dtype {a.dtype}"
                )
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(
                f"{name}: expected class indices in 0..{n_classes - 1}; "
                f"received values from {a.min()} to {a.max()}"
            )
        arrays.append(a)
    t, p = arrays
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred: expected the same length; received "
            f"{t.shape[0]} and {p.shape[0]}"
        )
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _as_history(history) -> Mapping[str, Sequence[float]]:
    """Accept a ``History`` callback, its ``.history`` dict, or a loaded JSON dict."""
    history = getattr(history, "history", history)
    if not isinstance(history, Mapping):
        raise TypeError(
            "history: expected a dict of lists such as History.history; "
            f"received {type(history).__name__}"
        )
    if not history.get("loss"):
        raise ValueError(
            "history: expected at least one epoch of 'loss'; received "
            f"keys {sorted(history)}"
        )
    return history


def _curve(ax, history, key: str, label: str, style: str, percent: bool) -> bool:
    values = history.get(key)
    if not values:
        return False
    y = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if percent:
        y = 100 * y
    epochs = np.arange(1, y.size + 1)
    last = f"{y[-1]:.2f}%" if percent else f"{y[-1]:.4f}"
    ax.plot(
        epochs, y, style, label=f"{label} (last {last})", linewidth=1.8, markersize=5
    )
    return True


def _epoch_ticks(n_epochs: int) -> list[int]:
    """Epochs 1..N, all of them up to 20, else 1 and every 2nd/5th/10th/20th..."""
    if n_epochs <= 20:
        return list(range(1, n_epochs + 1))
    step = next(
        s
        for m in range(12)
        for s in (10**m, 2 * 10**m, 5 * 10**m)
        if n_epochs // s <= 10
    )
    return [1, *range(step, n_epochs + 1, step)]


def plot_history(
    history, path: str | os.PathLike, validation_label: str = "validation"
) -> Path:
    """Loss and accuracy per epoch, training and validation, side by side.

    ``history`` is ``model.fit(...)``'s :class:`~fastnn.History`, its
    ``.history`` dict, or the same dict read back from ``history.json``. Keys
    used: ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``; missing ones
    are left out. ``validation_label`` names the ``val_`` curves (e.g.
    ``"test"`` when the test set served as validation data). Writes a PNG
    atomically and returns its path.
    """
    history = _as_history(history)
    fig = _new_figure(10, 4, left=0.07, right=0.98, bottom=0.13, top=0.91, wspace=0.22)
    ax_loss, ax_acc = fig.subplots(1, 2)
    n_epochs = max(len(v) for v in history.values() if isinstance(v, Sequence))
    # The training loss is the mean over the epoch's batches; every other
    # curve is evaluated after the epoch (fastnn.History).
    for ax, key, title, percent, training in (
        (ax_loss, "loss", "Loss", False, "training (batch mean)"),
        (ax_acc, "accuracy", "Accuracy (%)", True, "training"),
    ):
        drew = _curve(ax, history, key, training, "o-", percent)
        drew |= _curve(ax, history, f"val_{key}", validation_label, "s--", percent)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_xticks(_epoch_ticks(n_epochs))
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.grid(True, alpha=0.3)
        if drew:
            ax.legend()
        else:
            ax.text(
                0.5,
                0.5,
                f"no {key} recorded",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="gray",
            )
    return _save(fig, path)


def plot_confusion_matrix(
    y_true, y_pred, path: str | os.PathLike, labels: Iterable[Any] = range(10)
) -> Path:
    """The confusion matrix as an annotated heat map; writes a PNG atomically.

    ``y_true`` and ``y_pred`` are class indices ``0 .. len(labels) - 1``;
    ``labels`` names the classes on the axes. Rows are true classes.
    """
    labels = [str(label) for label in labels]
    cm = confusion_matrix(y_true, y_pred, len(labels))
    k = len(labels)
    size = max(4.0, 0.55 * k + 1.5)
    fig = _new_figure(size + 1.0, size, left=0.1, right=0.98, bottom=0.09, top=0.93)
    ax = fig.subplots()
    # Colour on a log-like scale so the few errors stay visible next to the
    # large diagonal; the annotations carry the exact counts.
    from matplotlib.colors import PowerNorm

    image = ax.imshow(
        cm, cmap="Blues", norm=PowerNorm(0.3, vmin=0, vmax=max(cm.max(), 1))
    )
    fig.colorbar(image, ax=ax, shrink=0.8, label="samples")
    threshold = 0.35 * max(cm.max(), 1)
    font = 9 if k <= 10 else 7
    for i in range(k):
        for j in range(k):
            if cm[i, j] == 0:
                continue
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color=color,
                fontsize=font,
            )
    ax.set_xticks(range(k), labels)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(cm.sum())
    accuracy = np.trace(cm) / total if total else float("nan")
    ax.set_title(
        f"Confusion matrix: {total:,d} samples, accuracy {100 * accuracy:.2f}%"
    )
    return _save(fig, path)


def plot_digit_predictions(
    images, probs, path: str | os.PathLike, names: Sequence[str] | None = None
) -> Path:
    """Each image with its predicted class and probability; writes a PNG.

    ``images``: ``(n, 784)`` or ``(n, 28, 28)`` in [0, 1] (as
    :func:`fastnn.images.load_digit_image` returns); ``probs``: ``(n, k)``
    class probabilities (``model.predict``); ``names``: optional titles such
    as the file names.
    """
    images = np.asarray(images, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"images: expected shape (n, 784) or (n, 28, 28); received {images.shape}"
        )
    n = images.shape[0]
    if probs.ndim != 2 or probs.shape[0] != n:
        raise ValueError(
            f"probs: expected shape ({n}, n_classes); received {probs.shape}"
        )
    if names is not None and len(names) != n:
        raise ValueError(f"names: expected {n} names; received {len(names)}")
    if n == 0:
        raise ValueError("images: expected at least one image; received none")
    cols = min(n, 6)
    rows = -(-n // cols)
    height = 2.2 * rows  # inches: a 1.7-inch image and a two-line title per row
    fig = _new_figure(
        1.9 * cols,
        height,
        left=0.02,
        right=0.98,
        bottom=0.05 / height,
        top=1 - 0.5 / height,
        wspace=0.1,
        hspace=0.3,
    )
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
        digit = int(probs[i].argmax())
        title = f"{digit} ({100 * probs[i, digit]:.1f}%)"
        if names is not None:
            title = f"{_shorten(names[i])}\n{title}"
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _shorten(name: str, width: int = 18) -> str:
    """The file name, cut in the middle if long: names often share a prefix
    and differ at the end (``digit_01.png``, ``digit_02.png``)."""
    name = os.path.basename(str(name))
    if len(name) <= width:
        return name
    tail = (width - 3) // 2 + 1
    return name[: width - 3 - tail] + "..." + name[-tail:]


def plot_sweep(result, path: str | os.PathLike) -> Path:
    """A :class:`fastnn.distributed.SweepResult`'s metric per configuration:
    a bar for the mean over seeds and a dot per seed; writes a PNG atomically."""
    rows = result.summary()
    metric = result.metric
    k = len(rows)
    # Label the bars with the parameters that vary; the others are constant.
    varying = [
        p for p in result.params if len({repr(row[p]) for row in rows}) > 1
    ] or list(result.params[:1])
    labels = ["\n".join(f"{p}={row[p]}" for p in varying) for row in rows]
    # About 0.07 inch per character at 8 points: side by side, each label
    # needs its own slot; when that would be too wide, slant them steeply
    # (each line of a slanted label takes about 0.15 inch across).
    chars = max(len(line) for label in labels for line in label.split("\n"))
    slot = max(0.9, 0.07 * chars + 0.2)
    slant = k * slot > 12.0
    if slant:
        slot = max(0.6, 0.2 * len(varying) + 0.2)
    fig = _new_figure(
        max(5.5, slot * k + 2.6), 3.8 + 0.2 * len(varying), layout="constrained"
    )
    ax = fig.subplots()
    means = [row["mean"] if row["mean"] is not None else 0.0 for row in rows]
    ax.bar(range(k), means, color="#9ecae1", label="mean over seeds")
    seen = []
    for i, row in enumerate(rows):
        values = [
            r[metric]
            for r in result.records
            if r["status"] == "ok"
            and r.get(metric) is not None
            and all(r[p] == row[p] for p in result.params)
        ]
        seen += values
        ax.plot(
            [i] * len(values),
            values,
            "o",
            color="#08519c",
            markersize=4,
            label="one seed" if i == 0 else None,
        )
        if row["failed"]:
            # At the bottom of the axes, whatever its y range.
            ax.text(
                i,
                0.02,
                f"{row['failed']} failed",
                ha="center",
                va="bottom",
                color="red",
                fontsize=8,
                transform=ax.get_xaxis_transform(),
            )
    seen += [row["mean"] for row in rows if row["mean"] is not None]
    if seen and not metric.endswith("loss"):
        ax.set_ylim(max(0.0, min(seen) - 0.05), min(1.0, max(seen) + 0.02) + 0.01)
    ax.set_xticks(
        range(k),
        labels,
        fontsize=8,
        rotation=60 if slant else 0,
        ha="right" if slant else "center",
        rotation_mode="anchor",
    )
    pad = max(0.0, (3 - k) / 2)  # one configuration: not a full-width block
    ax.set_xlim(-0.6 - pad, k - 0.4 + pad)
    ax.set_ylabel(metric)
    ax.set_title(f"Sweep: {metric} per configuration ({len(result)} trials)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, path)
