"""fastnn.plots: the confusion matrix counts, and each plot writes a valid PNG."""

from __future__ import annotations

import sys

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
