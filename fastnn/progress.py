"""What training shows while it runs: a progress bar per epoch and one line of
figures per epoch (``verbose=1``/``2``)."""

from __future__ import annotations

import sys

from fastnn.callbacks import Callback


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar(Callback):
    """A tqdm bar per epoch on stderr; silent when stderr is not a terminal."""

    def __init__(self, force: bool | None = None) -> None:
        self.force = force
        self.bar = None

    def on_train_begin(self, logs=None):
        self.enabled = (
            self.force if self.force is not None else _is_terminal(sys.stderr)
        )
        self.total_epochs = (logs or {}).get("epochs")
        self.steps = (logs or {}).get("steps")

    def on_epoch_begin(self, epoch, logs=None):
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=self.steps,
            unit="batch",
            leave=False,
            desc=f"Epoch {epoch + 1}/{self.total_epochs}",
            file=sys.stderr,
        )

    def on_batch_end(self, step, logs=None):
        if self.bar is not None:
            self.bar.update(logs["steps"])
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def format_logs(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    """One line per epoch; the loss is labelled as the mean over the epoch's
    batches, since every other figure is evaluated after the epoch
    (:class:`History`).

    ``Epoch 1/5 - loss (batch mean): 0.2412 - accuracy: 0.9301 - ... - 2.31s -
    25974 samples/s``
    """
    parts = [f"Epoch {epoch + 1}/{epochs}"]
    for key, value in logs.items():
        if key == "loss":
            parts.append(f"loss (batch mean): {value:.4f}")
        elif key == "seconds":
            parts.append(f"{value:.2f}s")
        elif key == "samples_per_second":
            parts.append(f"{value:.0f} samples/s")
        elif key != "learning_rate":
            parts.append(f"{key}: {value:.4f}")
    return " - ".join(parts)
