"""The ``fastnn`` command end to end on short real-MNIST runs, and digit images.

One small model (784-32-10, 2,000 samples, 2 epochs) is trained once per module
through ``cli.main`` and reused by the evaluate/predict tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import cli
from fastnn.backends import BACKEND_NAMES, available_backends
from fastnn.images import load_digit_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HISTORY_KEYS = {
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "samples_per_second",
    "learning_rate",
}
ACCURACY_LINE = re.compile(r"^test accuracy: (\d+\.\d\d)%$", re.MULTILINE)
SMALL_RUN = ["--backend", "numpy", "--limit", "2000", "--epochs", "2", "--hidden", "32"]


def run_main(argv) -> tuple[int, str, str]:
    """``cli.main(argv)`` with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_valid_png(path: Path, min_bytes: int = 10_000, min_side: int = 300) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.width >= min_side and img.height >= min_side


def assert_one_line_error(
    code: int, out: str, err: str, expected_code: int, fragment: str
) -> None:
    assert code == expected_code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastnn: error: "), err
    assert fragment in lines[0], err
    assert "Traceback" not in err + out


def save_digit_png(path: Path, row: np.ndarray, scale: int = 4) -> Path:
    """An MNIST row as a black-on-white PNG, ``scale`` times larger."""
    from PIL import Image

    ink = (255 * (1.0 - row.reshape(28, 28))).round().astype(np.uint8)
    img = Image.fromarray(ink)
    img.resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR).save(path)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist):
    """``fastnn train`` on a small slice; returns (folder, stdout)."""
    folder = tmp_path_factory.mktemp("run")
    code, out, err = run_main(["train", *SMALL_RUN, "-o", folder])
    assert code == 0, err
    return folder, out


@pytest.fixture(scope="module")
def easy_digit(trained_run, mnist):
    """``(row, label)`` of the test digit the trained model is surest about."""
    _, (x_test, y_test) = mnist
    model = fastnn.load(trained_run[0] / "model.npz")
    probs = model.predict(x_test[:200])
    correct = probs[np.arange(200), y_test[:200]]
    i = int(np.argmax(correct))
    assert probs[i].argmax() == y_test[i]
    return x_test[i], int(y_test[i])


# ----------------------------------------------------------------- train
def test_train_writes_model_history_and_plots(trained_run, mnist):
    folder, out = trained_run
    model = fastnn.load(folder / "model.npz")
    assert [layer.units for layer in model.layers] == [32, 10]
    assert model.epoch == 2

    history = json.loads((folder / "history.json").read_text())
    assert set(history) == HISTORY_KEYS
    assert all(len(values) == 2 for values in history.values())
    assert history["loss"][1] < history["loss"][0]
    # lr decays 10x over the run: the last epoch ends near 0.05 / 10.
    assert history["learning_rate"][1] == pytest.approx(0.005, rel=1e-6)

    assert_valid_png(folder / "loss.png")
    assert_valid_png(folder / "confusion_matrix.png")
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]

    # The printed accuracy is the saved model's accuracy on the full test set.
    _, (x_test, y_test) = mnist
    match = ACCURACY_LINE.search(out)
    assert match, out
    # Computed here, not by evaluate(): the fraction of argmax predictions right.
    accuracy = float(np.mean(model.predict(x_test).argmax(axis=1) == y_test))
    assert float(match.group(1)) == pytest.approx(100 * accuracy, abs=0.006)
    assert accuracy > 0.8
    # The val_ columns come from the test set when there is no split.
    assert history["val_accuracy"][-1] == pytest.approx(accuracy)
    assert re.search(r"^Epoch 2/2 - loss \(batch mean\): ", out, re.MULTILINE), out
    for name in ("model.npz", "history.json", "loss.png", "confusion_matrix.png"):
        assert f"wrote {folder / name}" in out


def test_train_with_validation_split_and_no_plots(tmp_path, mnist):
    code, out, err = run_main(
        [
            "train",
            "--backend",
            "numpy",
            "--limit",
            "1000",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--validation-split",
            "0.2",
            "--no-plots",
            "--quiet",
            "-o",
            tmp_path,
        ]
    )
    assert code == 0, err
    history = json.loads((tmp_path / "history.json").read_text())
    assert set(history) == HISTORY_KEYS
    # 800 training samples at batch 64 -> 13 steps; the last 200 held out
    # and scored as val_ (computed here from the saved model's predictions).
    model = fastnn.load(tmp_path / "model.npz")
    assert model.step == 13
    (x, y), _ = mnist
    held_x, held_y = x[800:1000], y[800:1000]
    correct = float(np.mean(model.predict(held_x).argmax(axis=1) == held_y))
    assert history["val_accuracy"] == [correct]
    assert not (tmp_path / "loss.png").exists()
    assert "Epoch" not in out  # --quiet
    assert ACCURACY_LINE.search(out)


def test_python_m_fastnn_train(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnn",
            "train",
            "--backend",
            "numpy",
            "--limit",
            "500",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--no-plots",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Epoch 1/1 - loss (batch mean): " in result.stdout
    assert ACCURACY_LINE.search(result.stdout), result.stdout
    fastnn.load(tmp_path / "model.npz")
    assert (tmp_path / "history.json").is_file()


# ----------------------------------------------------------------- evaluate
def test_evaluate_prints_test_loss_and_accuracy(trained_run):
    folder, train_out = trained_run
    code, out, err = run_main(["evaluate", folder / "model.npz", "--backend", "numpy"])
    assert code == 0, err
    assert ACCURACY_LINE.search(out).group(1) == ACCURACY_LINE.search(train_out).group(
        1
    )
    assert re.search(r"^test loss: \d+\.\d{4}$", out, re.MULTILINE), out


# ----------------------------------------------------------------- predict
def test_predict_black_on_white_png(trained_run, easy_digit, tmp_path):
    row, label = easy_digit
    png = save_digit_png(tmp_path / "digit.png", row)
    plot = tmp_path / "predictions.png"
    code, out, err = run_main(
        ["predict", trained_run[0] / "model.npz", png, "--plot", plot]
    )
    assert code == 0, err
    match = re.search(
        r"digit\.png\s+(\d) \((\d+\.\d\d)%\)\s+top-3: (.*)$", out, re.MULTILINE
    )
    assert match, out
    assert int(match.group(1)) == label
    assert len(match.group(3).split(", ")) == 3
    assert_valid_png(plot, min_bytes=1_000, min_side=150)


def test_predict_several_images_and_explicit_invert(trained_run, easy_digit, tmp_path):
    row, label = easy_digit
    black_on_white = save_digit_png(tmp_path / "a.png", row)
    white_on_black = tmp_path / "b.png"
    from PIL import Image

    Image.fromarray((255 * row.reshape(28, 28)).astype(np.uint8)).save(white_on_black)
    model = trained_run[0] / "model.npz"
    code, out, err = run_main(["predict", model, black_on_white, "--invert"])
    assert code == 0, err
    assert re.search(rf"a\.png\s+{label} ", out), out
    code, out, err = run_main(["predict", model, white_on_black, "--no-invert"])
    assert code == 0, err
    assert re.search(rf"b\.png\s+{label} ", out), out
    code, out, err = run_main(["predict", model, black_on_white, white_on_black])
    assert code == 0, err
    assert len(out.strip().splitlines()) == 2


# ----------------------------------------------------------------- images
def test_load_digit_image_matches_mnist_preprocessing(easy_digit, tmp_path):
    row, _ = easy_digit
    x = load_digit_image(save_digit_png(tmp_path / "d.png", row, scale=5))
    assert x.dtype == np.float32 and x.shape == (784,)
    assert x.min() == 0.0 and x.max() == 1.0
    # Re-preprocessing an MNIST digit gives (nearly) the same image.
    assert np.corrcoef(x, row)[0, 1] > 0.9


def test_load_digit_image_auto_inverts_only_light_backgrounds(easy_digit, tmp_path):
    from PIL import Image

    row, _ = easy_digit
    dark = tmp_path / "dark.png"
    Image.fromarray((255 * row.reshape(28, 28)).astype(np.uint8)).save(dark)
    light = save_digit_png(tmp_path / "light.png", row, scale=1)
    np.testing.assert_allclose(
        load_digit_image(dark), load_digit_image(light), atol=2 / 255
    )
    np.testing.assert_allclose(
        load_digit_image(light, invert=True), load_digit_image(light)
    )


def test_load_digit_image_on_transparent_background(tmp_path):
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (100, 140), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(50, 10), (50, 130)], fill=(0, 0, 0, 255), width=12)
    img.save(tmp_path / "one.png")
    x = load_digit_image(tmp_path / "one.png").reshape(28, 28)
    rows = np.flatnonzero(x.max(axis=1) > 0.5)
    cols = np.flatnonzero(x.max(axis=0) > 0.5)
    assert rows[-1] - rows[0] + 1 == 20  # the long side fills the 20-pixel box
    assert cols[-1] - cols[0] + 1 <= 4
    assert abs((rows[0] + rows[-1]) / 2 - 14) <= 1


def test_load_digit_image_errors(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_digit_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not an image file"):
        load_digit_image(tmp_path / "notes.txt")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="looks blank"):
        load_digit_image(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="invert"):
        load_digit_image(tmp_path / "blank.png", invert="yes")


# ----------------------------------------------------------------- backends
def test_backends_lists_every_backend():
    code, out, err = run_main(["backends"])
    assert code == 0, err
    for name in BACKEND_NAMES:
        assert re.search(rf"^{name}\s+(available|unavailable: )", out, re.MULTILINE)
    assert re.search(r"^numpy\s+available$", out, re.MULTILINE)


def test_help_and_version():
    code, out, _ = run_main(["--help"])
    assert code == 0 and "train" in out and "predict" in out
    code, out, _ = run_main(["train", "--help"])
    assert code == 0 and "test set" in out and "--validation-split" in out
    code, out, _ = run_main(["--version"])
    assert code == 0 and fastnn.__version__ in out


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required: COMMAND"),
        (["fly"], "invalid choice: 'fly'"),
        (["train", "--backend", "nmba"], "invalid choice: 'nmba'"),
        (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
        (["train", "--hidden", "64", "x"], "--hidden: expected hidden sizes like"),
        (["train", "--hidden", "512", "512", "512"], "write 512x512x512"),
        (["train", "--validation-split", "1.5"], "--validation-split: expected"),
        (["train", "--learning-rate", "nan"], "--learning-rate: expected"),
        (["train", "--optimizer", "adamm"], "invalid choice: 'adamm'"),
        (["train", "--dropout", "1"], "--dropout: expected"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["predict", "model.npz"], "IMAGE"),
    ],
    ids=[
        "no-command",
        "unknown-command",
        "unknown-backend",
        "zero-epochs",
        "bad-hidden",
        "hidden-as-several-values",
        "bad-split",
        "nan-learning-rate",
        "unknown-optimizer",
        "dropout-of-one",
        "unknown-flag",
        "predict-without-image",
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, fragment):
    assert_one_line_error(*run_main(argv), expected_code=2, fragment=fragment)


def test_batch_larger_than_limit_is_a_usage_error(tmp_path):
    assert_one_line_error(
        *run_main(["train", "--backend", "numpy", "--limit", "10", "-o", tmp_path]),
        expected_code=2,
        fragment="--batch-size: 64 is more than the 10",
    )


def test_missing_model_file(tmp_path):
    for command in (["evaluate"], ["predict"]):
        argv = (
            command
            + [tmp_path / "nope.npz"]
            + (["x.png"] if command == ["predict"] else [])
        )
        assert_one_line_error(
            *run_main(argv), expected_code=1, fragment="does not exist"
        )


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"this is not a zip archive")
    assert_one_line_error(
        *run_main(["evaluate", bad]),
        expected_code=1,
        fragment="is not a valid fastnn model file",
    )


def test_truncated_model_file(trained_run, tmp_path):
    data = (trained_run[0] / "model.npz").read_bytes()
    bad = tmp_path / "model.npz"
    bad.write_bytes(data[: len(data) // 2])
    assert_one_line_error(
        *run_main(["evaluate", bad]),
        expected_code=1,
        fragment="is not a valid fastnn model file",
    )


def test_model_folder_instead_of_file(trained_run):
    assert_one_line_error(
        *run_main(["evaluate", trained_run[0]]), expected_code=1, fragment="is a folder"
    )


def test_unreadable_image(trained_run, tmp_path):
    text = tmp_path / "digit.png"
    text.write_text("not really a png")
    model = trained_run[0] / "model.npz"
    assert_one_line_error(
        *run_main(["predict", model, text]),
        expected_code=1,
        fragment="not an image file",
    )
    assert_one_line_error(
        *run_main(["predict", model, tmp_path / "none.png"]),
        expected_code=1,
        fragment="does not exist",
    )


def test_unavailable_backend(trained_run, tmp_path, monkeypatch):
    missing = [name for name, why in available_backends().items() if why]
    if missing:
        name = missing[0]
    else:  # every backend builds here: make one fail to import
        name = "numba"
        monkeypatch.setitem(fastnn.backends._MODULES, name, "fastnn._no_such_module")
    assert_one_line_error(
        *run_main(["evaluate", trained_run[0] / "model.npz", "--backend", name]),
        expected_code=1,
        fragment=f"backend {name!r} is not available",
    )
    # train refuses before loading data or training.
    assert_one_line_error(
        *run_main(["train", "--backend", name, "-o", tmp_path / "out"]),
        expected_code=1,
        fragment=f"backend {name!r} is not available",
    )
    assert not (tmp_path / "out").exists()


def test_python_m_fastnn_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "evaluate", str(tmp_path / "nope.npz")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("fastnn: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


#: History keys that measure the machine, not the training.
_TIMING = ("seconds", "samples_per_second")


def _without_timing(history: dict) -> dict:
    return {k: v for k, v in history.items() if k not in _TIMING}


def _plotted_epochs(monkeypatch) -> list:
    """Record the x values of every curve each saved figure holds."""
    from fastnn import plots

    seen, save = [], plots._save

    def recording_save(fig, path):
        if Path(path).name == "loss.png":
            seen.append(
                [list(line.get_xdata()) for ax in fig.axes for line in ax.lines]
            )
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", recording_save)
    return seen


@pytest.mark.parametrize(
    "recipe", [[], ["--optimizer", "adam", "--dropout", "0.3"]], ids=["sgd", "adam"]
)
def test_train_resume_continues_exactly(tmp_path, monkeypatch, recipe):
    base = ["train", "--backend", "numpy", "--limit", "700", "--hidden", "16"]
    base += ["--epochs", "3", "--quiet", *recipe]
    plotted = _plotted_epochs(monkeypatch)
    code, out, err = run_main(base + ["-o", tmp_path / "whole"])
    assert code == 0, err
    assert f"wrote {tmp_path / 'whole' / 'checkpoint.npz'}" in out

    # The same run, interrupted (Ctrl-C) right after its first checkpoint.
    save = fastnn.ModelCheckpoint.on_epoch_end

    def save_then_interrupt(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(fastnn.ModelCheckpoint, "on_epoch_end", save_then_interrupt)
        code, _, err = run_main(base + ["-o", tmp_path / "cut"])
    assert code == 130, err
    checkpoint = tmp_path / "cut" / "checkpoint.npz"
    assert fastnn.load(checkpoint).epoch == 1

    code, _, err = run_main(base + ["--resume", checkpoint, "-o", tmp_path / "cut"])
    assert code == 0, err
    whole = fastnn.load(tmp_path / "whole" / "model.npz")
    resumed = fastnn.load(tmp_path / "cut" / "model.npz")
    assert resumed.epoch == 3
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.slots, whole.slots)

    # The history, its JSON and the plot cover all three epochs, numbered
    # as in the uninterrupted run (the epoch before the cut included).
    histories = [
        json.loads((tmp_path / run / "history.json").read_text())
        for run in ("whole", "cut")
    ]
    assert all(len(values) == 3 for values in histories[1].values()), histories[1]
    assert _without_timing(histories[1]) == _without_timing(histories[0])
    assert resumed.history.epoch == [0, 1, 2]
    assert len(plotted) == 2
    assert plotted[1] == plotted[0]
    assert plotted[1] and all(x == [1, 2, 3] for x in plotted[1]), plotted[1]

    code, _, err = run_main(base + ["--resume", tmp_path / "nope.npz", "-o", tmp_path])
    assert code == 1
    assert "--resume: no checkpoint file" in err


def test_train_resume_of_a_finished_run_says_so(tmp_path):
    base = ["train", "--backend", "numpy", "--limit", "300", "--hidden", "8"]
    base += ["--epochs", "2", "--quiet", "--no-plots", "-o", tmp_path]
    code, _, err = run_main(base)
    assert code == 0, err
    before = (tmp_path / "model.npz").stat().st_mtime_ns
    code, out, err = run_main(base + ["--resume", tmp_path / "checkpoint.npz"])
    assert (code, err) == (0, "")
    assert out == (
        f"checkpoint {tmp_path / 'checkpoint.npz'} already completed 2 of 2 "
        "epochs; nothing to do. Pass --epochs N (N > 2) to train further.\n"
    )
    assert (tmp_path / "model.npz").stat().st_mtime_ns == before
    # --epochs 3 trains the one more epoch, and the history has all three.
    code, out, err = run_main(
        [a if a != "2" else "3" for a in base]
        + ["--resume", tmp_path / "checkpoint.npz"]
    )
    assert code == 0, err
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["loss"]) == 3


# ----------------------------------------------------------------- bench, sweep
def test_bench_footnote_names_the_samples_flag(tmp_path, capsys):
    """``--samples`` cuts the data: the footnote names the flag the user typed."""
    png = tmp_path / "bench.png"
    argv = ["bench", "--backends", "numpy", "--configs", "S", "--samples", "300"]
    code = cli.main([*argv, "--rounds", "1", "-o", str(png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "(--samples: 300 samples, not a real measurement)" in out
    assert "FASTNN_BENCH_SAMPLES" not in out + err
    assert_valid_png(png, min_bytes=5_000)


def _decimals(cell: str) -> int:
    return len(cell.partition(".")[2])


def test_sweep_prints_each_column_with_fixed_decimals(tmp_path, capsys, monkeypatch):
    """Scores such as 0.808 and 0.8171 print as 0.8080 and 0.8171."""
    from fastnn import distributed

    pytest.importorskip("matplotlib")

    def fake_sweep(build, x, y, grid, seeds, **kwargs):
        records = []
        for lr, acc, seconds in ((0.1, 0.808, 12.0), (0.05, 0.8171, 9.26)):
            records.append(
                {
                    "trial": len(records),
                    "seed": 0,
                    "learning_rate": lr,
                    "hidden": [32],
                    "momentum": 0.9,
                    "weight_decay": 5e-05,
                    "status": "ok",
                    "error": None,
                    "loss": 1 - acc,
                    "accuracy": acc + 0.01,
                    "val_loss": 0.5,
                    "val_accuracy": acc,
                    "epochs": 2,
                    "seconds": seconds,
                }
            )
        assert grid["learning_rate"] == [0.1, 0.05]
        return distributed.SweepResult(records, list(grid), "val_accuracy")

    monkeypatch.setattr(distributed, "sweep", fake_sweep)
    argv = ["sweep", "--learning-rate", "0.1", "0.05", "--hidden", "32"]
    argv += ["--backend", "numpy", "--limit", "2000", "-o", str(tmp_path)]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    table = [line.strip("|").split("|") for line in out.splitlines() if "|" in line]
    header = [c.strip() for c in table[0]]
    rows = [[c.strip() for c in row] for row in table[2:]]
    assert len(rows) == 2
    column = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    assert column["val_accuracy"] == ["0.8080", "0.8171"]
    assert column["learning_rate"] == ["0.10", "0.05"]
    assert column["seconds"] == ["12.0", "9.3"]
    for name in ("loss", "accuracy", "val_loss", "weight_decay", "momentum"):
        assert len({_decimals(c) for c in column[name]}) == 1, column[name]
    assert (tmp_path / "sweep.md").read_text() in out


def test_train_options_reach_the_model_and_optimizer(tmp_path):
    """--dtype float64, --momentum, --weight-decay, --learning-rate and
    --lr-decay end up in the saved model, and the learning rate falls by
    --lr-decay over the run (640 samples, batch 64, 2 epochs: 20 steps)."""
    code, _, err = run_main(
        ["train", "--backend", "numpy", "--dtype", "float64", "--limit", "640",
         "--hidden", "8", "--epochs", "2", "--batch-size", "64",
         "--learning-rate", "0.2", "--lr-decay", "0.5", "--momentum", "0.5",
         "--weight-decay", "0.001", "--no-plots", "--quiet", "-o", tmp_path]
    )  # fmt: skip
    assert code == 0, err
    model = fastnn.load(tmp_path / "model.npz")
    assert model.dtype == np.float64 and model.params.dtype == np.float64
    assert model.step == 20
    opt = model.optimizer
    assert (opt.momentum, opt.nesterov, opt.weight_decay) == (0.5, True, 0.001)
    assert opt.learning_rates(0, 1)[0] == 0.2
    assert opt.learning_rates(20, 1)[0] == pytest.approx(0.1, rel=1e-12)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["learning_rate"] == pytest.approx([0.2 * 0.5**0.5, 0.1], rel=1e-12)


@pytest.mark.parametrize(
    ("flags", "kind", "lr", "extra"),
    [
        (["--optimizer", "adam", "--dropout", "0.25"], "Adam", 1e-3, {}),
        (["--optimizer", "adamw", "--weight-decay", "0.01"], "AdamW", 1e-3, {}),
        (["--optimizer", "rmsprop", "--momentum", "0.5"], "RMSprop", 1e-3,
         {"momentum": 0.5}),
        (["--optimizer", "adagrad", "--learning-rate", "0.02"], "Adagrad", 0.02, {}),
    ],
    ids=["adam-dropout", "adamw", "rmsprop-momentum", "adagrad"],
)  # fmt: skip
def test_train_optimizer_and_dropout_reach_the_model(tmp_path, flags, kind, lr, extra):
    """--optimizer picks the optimizer at its own default rate (or
    --learning-rate), --dropout puts a Dropout after every hidden layer; both
    are in the saved model, and the log line names them."""
    code, out, err = run_main(
        ["train", "--backend", "numpy", "--limit", "256", "--hidden", "8x8",
         "--epochs", "1", "--no-plots", "-o", tmp_path, *flags]
    )  # fmt: skip
    assert code == 0, err
    model = fastnn.load(tmp_path / "model.npz")
    assert type(model.optimizer).__name__ == kind
    assert kind in out
    assert model.optimizer.learning_rates(0, 1)[0] == pytest.approx(lr)
    for name, value in extra.items():
        assert getattr(model.optimizer, name) == value
    rate = float(flags[flags.index("--dropout") + 1]) if "--dropout" in flags else 0
    assert model.dropout_rates == ((0.0, rate, rate) if rate else (0.0, 0.0, 0.0))
    assert model.slots.shape[0] == len(model.optimizer.slot_names())


def test_train_momentum_with_an_optimizer_that_has_none_is_refused(tmp_path):
    code, _, err = run_main(
        ["train", "--backend", "numpy", "--limit", "100", "--optimizer", "adam",
         "--momentum", "0.5", "-o", tmp_path]
    )  # fmt: skip
    assert code == 2
    assert "--momentum: applies to sgd and rmsprop" in err
