"""fastnn.plots: the confusion matrix counts, and each plot writes a valid PNG."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import plots
from fastnn.callbacks import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY = {
    "loss": [0.27, 0.09, 0.05],
    "accuracy": [0.975, 0.985, 0.992],
    "val_loss": [0.18, 0.09, 0.07],
    "val_accuracy": [0.967, 0.978, 0.981],
    "seconds": [30.1, 29.8, 30.0],
    "learning_rate": [0.03, 0.015, 0.005],
}


def assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------- confusion matrix
def test_confusion_matrix_counts_match_a_loop():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, size=500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 10, size=500))
    expected = np.zeros((10, 10), np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        expected[t, p] += 1
    cm = plots.confusion_matrix(y_true, y_pred, 10)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 500
    assert np.trace(cm) == np.sum(y_true == y_pred)


def test_confusion_matrix_rows_are_true_classes():
    cm = plots.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 0]])


def test_confusion_matrix_empty_input():
    np.testing.assert_array_equal(plots.confusion_matrix([], [], 2), np.zeros((2, 2)))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "n_classes", "error", "match"),
    [
        ([0, 1], [0], 2, ValueError, "same length"),
        ([0, 3], [0, 1], 3, ValueError, r"in 0\.\.2"),
        ([0, -1], [0, 1], 3, ValueError, r"in 0\.\.2"),
        ([[0, 1]], [[0, 1]], 2, ValueError, "1-D"),
        ([0.5, 1.0], [0, 1], 2, TypeError, "integer class indices"),
        ([0, 1], [0, 1], 0, ValueError, "n_classes"),
    ],
    ids=["length", "too-large", "negative", "2-d", "fractional", "zero-classes"],
)
def test_confusion_matrix_rejects_bad_input(y_true, y_pred, n_classes, error, match):
    with pytest.raises(error, match=match):
        plots.confusion_matrix(y_true, y_pred, n_classes)


# ----------------------------------------------------------------- plots
@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib", reason="matplotlib is not installed")


def test_plot_history_from_dict_and_history(mpl, tmp_path):
    assert plots.plot_history(HISTORY, tmp_path / "a.png") == tmp_path / "a.png"
    assert_png(tmp_path / "a.png")
    history = History()
    for epoch in range(3):
        history.on_epoch_end(epoch, {k: v[epoch] for k, v in HISTORY.items()})
    plots.plot_history(history, tmp_path / "b.png", validation_label="test")
    assert_png(tmp_path / "b.png")


def test_plot_history_without_accuracy_or_validation(mpl, tmp_path):
    plots.plot_history({"loss": [1.0, 0.5]}, tmp_path / "loss.png")
    assert_png(tmp_path / "loss.png")


def test_plot_history_rejects_empty_history(mpl, tmp_path):
    with pytest.raises(ValueError, match="at least one epoch"):
        plots.plot_history({}, tmp_path / "x.png")
    with pytest.raises(TypeError, match="dict of lists"):
        plots.plot_history([0.1, 0.2], tmp_path / "x.png")


def test_plot_confusion_matrix_and_overwrite(mpl, tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, size=1000)
    path = tmp_path / "cm.png"
    path.write_bytes(b"old")
    plots.plot_confusion_matrix(y, np.roll(y, 1), path)
    assert_png(path, min_bytes=20_000)


def test_plot_digit_predictions(mpl, tmp_path):
    rng = np.random.default_rng(2)
    images = rng.random((7, 784)).astype(np.float32)
    probs = rng.dirichlet(np.ones(10), size=7)
    plots.plot_digit_predictions(
        images, probs, tmp_path / "p.png", names=[f"digit_{i}.png" for i in range(7)]
    )
    assert_png(tmp_path / "p.png")
    with pytest.raises(ValueError, match="probs"):
        plots.plot_digit_predictions(images, probs[:3], tmp_path / "p.png")


def test_plots_need_an_existing_folder(mpl, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plots.plot_history(HISTORY, tmp_path / "missing" / "loss.png")
    with pytest.raises(IsADirectoryError, match="is a folder; expected a file"):
        plots.plot_history(HISTORY, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_plots_leave_pyplot_alone(mpl, tmp_path):
    """Plotting uses its own Agg canvas: pyplot (and its global backend) untouched."""
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plots.plot_history(HISTORY, tmp_path / "a.png")
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastnn\[plots\]"'):
        plots.plot_history(HISTORY, tmp_path / "a.png")


# ----------------------------------------------------------------- readability
@pytest.fixture
def saved_figures(mpl, monkeypatch):
    """The Figure of every PNG written while the test runs, in order."""
    from matplotlib.figure import Figure

    figures = []
    savefig = Figure.savefig

    def spy(self, *args, **kwargs):
        figures.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figures


def assert_readable(fig) -> None:
    """Nothing is clipped by the figure's edges, and no two horizontal x tick
    labels of an axes overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    box = fig.get_tightbbox(renderer)  # in inches: everything drawn
    if not (
        box.x0 >= -0.01
        and box.y0 >= -0.01
        and box.x1 <= width + 0.01
        and box.y1 <= height + 0.01
    ):
        extents = {
            t.get_text(): t.get_window_extent(renderer)
            for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip()
        }
        outside = [
            text
            for text, e in extents.items()
            if not (fig.bbox.contains(*e.min) and fig.bbox.contains(*e.max))
        ]
        raise AssertionError(
            f"drawn area {box.bounds} exceeds the {width} x {height} inch figure; "
            f"texts outside: {outside}"
        )
    for ax in fig.axes:
        if not ax.axison:
            continue
        labels = [
            t.get_window_extent(renderer)
            for t in ax.get_xticklabels()
            if t.get_visible() and t.get_text() and t.get_rotation() == 0
        ]
        labels.sort(key=lambda b: b.x0)
        for left, right in zip(labels, labels[1:], strict=False):
            assert left.x1 <= right.x0, f"x tick labels overlap in {ax.get_title()!r}"


def _bench_rows(configs, backends=("numpy", "numba", "cython"), smoke=False):
    from fastnn import bench

    speed = {"S": 60_000, "L64": 6_000, "L256": 12_000}
    rows = [
        bench.BenchRow(
            backend,
            config,
            "float32",
            60_000 / (speed[config] * (1 + i)),
            None,
            speed[config] * (1 + i),
            group=f"{config}-float32",
            n_samples=2000 if smoke else 60_000,
            smoke=smoke,
        )
        for config in configs
        for i, backend in enumerate(backends)
    ]
    return bench.with_ratios(rows)


@pytest.mark.parametrize(
    ("configs", "backends"),
    [
        (["S"], ("numpy", "numba", "cython")),
        (["S", "L64"], ("numpy", "numba", "cython")),
        (["S", "L64", "L256"], ("numpy", "numba", "cython", "handwritten-numpy")),
        (["L64"], ("cython",)),
    ],
    ids=["1-config", "2-configs", "3-configs-4-backends", "1-bar"],
)
def test_bench_png_has_one_labelled_panel_per_config(
    saved_figures, tmp_path, configs, backends
):
    """S is ten times faster than L64: each config gets its own y axis."""
    from fastnn import bench

    path = bench.plot_bars(_bench_rows(configs, backends), tmp_path / "bench.png")
    assert_png(path)
    (fig,) = saved_figures
    assert len(fig.axes) == len(configs)
    for ax, config in zip(fig.axes, configs, strict=True):
        assert ax.get_ylabel() and config in ax.get_title()
        assert [t.get_text() for t in ax.get_xticklabels()] == list(backends)
    assert_readable(fig)


def test_bench_png_says_when_it_is_not_a_real_measurement(saved_figures, tmp_path):
    from fastnn import bench

    bench.plot_bars(_bench_rows(["S"], smoke=True), tmp_path / "bench.png")
    assert "2000 samples: not a real measurement" in saved_figures[0].get_suptitle()
    assert_readable(saved_figures[0])
    with pytest.raises(ValueError, match="rows: expected at least one result"):
        bench.plot_bars([], tmp_path / "empty.png")


@pytest.mark.parametrize("n_epochs", [1, 3, 20, 30, 101])
def test_history_epochs_are_the_integers_from_1(saved_figures, tmp_path, n_epochs):
    history = {"loss": list(np.linspace(1, 0.1, n_epochs))}
    history["val_accuracy"] = list(np.linspace(0.8, 0.97, n_epochs))
    plots.plot_history(history, tmp_path / "loss.png")
    (fig,) = saved_figures
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if 0.5 <= t <= n_epochs + 0.5]
        assert ticks[0] == 1 and ticks[-1] <= n_epochs
        assert all(float(t).is_integer() for t in ticks)
        if n_epochs <= 20:
            assert ticks == list(range(1, n_epochs + 1))
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[: len(ticks)] == [str(int(t)) for t in ticks]
    assert_readable(fig)


def test_every_plot_is_readable(saved_figures, tmp_path):
    plots.plot_history(HISTORY, tmp_path / "loss.png")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, size=10_000)
    plots.plot_confusion_matrix(
        y, np.where(rng.random(10_000) < 0.9, y, 0), tmp_path / "cm.png"
    )
    images = rng.random((7, 784))
    probs = rng.dirichlet(np.ones(10), size=7)
    names = [f"my_handwritten_digit_number_{i}.png" for i in range(7)]
    plots.plot_digit_predictions(images, probs, tmp_path / "p.png", names=names)
    plots.plot_digit_predictions(images[:1], probs[:1], tmp_path / "p1.png")
    assert len(saved_figures) == 4
    for fig in saved_figures:
        assert_readable(fig)
    # Long names sharing a prefix keep the end that tells them apart.
    titles = [ax.get_title() for ax in saved_figures[2].axes if ax.get_title()]
    assert len({t.split("\n")[0] for t in titles}) == 7


def _sweep_result(learning_rates, hiddens, failed=()):
    from fastnn.distributed import SweepResult

    records = []
    for lr in learning_rates:
        for hidden in hiddens:
            for seed in (0, 1):
                ok = (lr, seed) not in failed
                score = 0.95 + lr / 10 + len(hidden) / 200 + seed / 500
                records.append(
                    {
                        "trial": len(records),
                        "seed": seed,
                        "learning_rate": lr,
                        "hidden": hidden,
                        "status": "ok" if ok else "failed",
                        "error": None if ok else "ValueError: diverged",
                        "loss": 0.1 if ok else None,
                        "accuracy": score + 0.01 if ok else None,
                        "val_loss": 0.12 if ok else None,
                        "val_accuracy": score if ok else None,
                        "epochs": 2,
                        "seconds": 3.25,
                    }
                )
    return SweepResult(records, ["learning_rate", "hidden"], "val_accuracy")


@pytest.mark.parametrize(
    ("learning_rates", "hiddens"),
    [
        ([0.02, 0.05, 0.1], [[128], [512, 512]]),
        ([0.05], [[128]]),
        ([0.01, 0.02, 0.03, 0.05, 0.1, 0.2], [[64], [128], [256, 256]]),
    ],
    ids=["6-configs", "1-config", "18-configs"],
)
def test_sweep_png_is_readable(saved_figures, tmp_path, learning_rates, hiddens):
    result = _sweep_result(learning_rates, hiddens, failed={(learning_rates[0], 1)})
    result.plot(tmp_path / "sweep.png")
    (fig,) = saved_figures
    assert_readable(fig)
    (ax,) = fig.axes
    assert ax.get_ylabel() == "val_accuracy"
    # The failed trial is reported inside the axes, whatever its y range.
    renderer = fig.canvas.get_renderer()
    failed = [t for t in ax.texts if t.get_text() == "1 failed"]
    assert len(failed) == len(hiddens)
    for text in failed:
        assert ax.bbox.contains(*text.get_window_extent(renderer).min)
    # Every seed's dot is within the y range.
    low, high = ax.get_ylim()
    dots = [y for line in ax.lines for y in line.get_ydata()]
    assert dots and all(low <= y <= high for y in dots)


def test_peers_png_is_readable(saved_figures, tmp_path, monkeypatch):
    """docs/peers.png, from benchmarks/peers/report.py."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    from benchmarks.peers import report

    times = {"fastnn-cython": 0.4, "fastnn-numpy": 1.1, "jax": 1.0, "keras": 5.8}
    report.plot({c: dict(times) for c in ("S", "L64", "L256")}, tmp_path / "p.png")
    (fig,) = saved_figures
    assert_readable(fig)
    assert "lower is better" in fig.get_suptitle()
