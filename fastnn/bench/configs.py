"""The benchmark configurations and the model each one trains.

Every configuration has ReLU hidden layers, a softmax output, cross-entropy and
``SGD(0.05, momentum=0.9, weight_decay=1e-4)``; see :mod:`fastnn.bench` for
the table.
"""

from __future__ import annotations

from itertools import pairwise
from typing import NamedTuple

__all__ = [
    "CONFIGS",
    "LEARNING_RATE",
    "MOMENTUM",
    "WEIGHT_DECAY",
    "BenchConfig",
    "build_model",
    "check_config",
    "epoch_flops",
]


class BenchConfig(NamedTuple):
    """Hidden layer widths and batch size of one benchmark configuration."""

    hidden: tuple[int, ...]
    batch_size: int
    input_dim: int = 784
    n_classes: int = 10

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths, input to output."""
        return (self.input_dim, *self.hidden, self.n_classes)


CONFIGS: dict[str, BenchConfig] = {
    "S": BenchConfig(hidden=(128,), batch_size=64),
    "L64": BenchConfig(hidden=(512, 512, 512), batch_size=64),
    "L256": BenchConfig(hidden=(512, 512, 512), batch_size=256),
}
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 1e-4


def check_config(name: str) -> BenchConfig:
    """The configuration called ``name``, or ValueError naming the known ones."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(
            f"config: expected one of {', '.join(map(repr, CONFIGS))}; "
            f"received {name!r}"
        ) from None


def build_model(config: str, backend: str, dtype: str = "float32", seed: int = 0):
    """The benchmark model of ``config`` (see :mod:`fastnn.bench`) on ``backend``."""
    import fastnn

    cfg = check_config(config)
    layers = [
        fastnn.Dense(h, activation="relu", kernel_initializer="he_uniform")
        for h in cfg.hidden
    ]
    layers.append(fastnn.Dense(cfg.n_classes, activation="softmax"))
    return fastnn.Sequential(
        layers,
        input_dim=cfg.input_dim,
        loss="cross_entropy",
        optimizer=fastnn.SGD(
            learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        ),
        backend=backend,
        dtype=dtype,
        seed=seed,
    )


def epoch_flops(config: str, n_samples: int) -> float:
    """Floating-point operations of the matrix products in one training epoch.

    Per sample and layer ``n_in x n_out``: 2 n_in n_out for the forward product,
    as much for ``dW`` and, except on the first layer, for ``dX``.
    """
    sizes = check_config(config).sizes
    per_sample = 0
    for layer, (n_in, n_out) in enumerate(pairwise(sizes)):
        per_sample += (4 if layer == 0 else 6) * n_in * n_out
    return float(per_sample) * n_samples
