"""The default MNIST recipe of ``fastnn train`` and ``fastnn sweep``, and
:func:`mnist_model`, the network both commands build from it.

784-512-512-512-10, relu, softmax, batch 64, 5 epochs; he_uniform
initialisation; SGD with Nesterov momentum 0.9, weight decay 5e-5 and a
learning rate starting at 0.05 that decays exponentially, step by step, to a
tenth of that over the run. Every value has a flag.
"""

from __future__ import annotations

from fastnn.cli.common import UsageError

HIDDEN = (512, 512, 512)
EPOCHS = 5
BATCH_SIZE = 64
LEARNING_RATE = 0.05
#: Each optimizer's default initial rate in the recipe (SGD's: LEARNING_RATE).
OPTIMIZER_RATES = {
    "sgd": LEARNING_RATE,
    "adam": 1e-3,
    "adamw": 1e-3,
    "rmsprop": 1e-3,
    "adagrad": 0.01,
}
LR_DECAY = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-5
#: Each optimizer's default weight decay in the recipe: SGD's L2, AdamW's own
#: default; none for the others, whose normalised steps drive weights that
#: L2 pulls toward zero into the subnormal range, where x86 arithmetic crawls
#: (docs/performance.md).
OPTIMIZER_DECAYS = {"sgd": WEIGHT_DECAY, "adamw": 0.01}
SEED = 0
OUTPUT = "runs/mnist"


def mnist_model(
    seed,
    learning_rate=None,
    hidden=HIDDEN,
    momentum=None,
    weight_decay=None,
    lr_decay=1.0,
    decay_steps=1,
    backend="auto",
    dtype="float32",
    input_dim=784,
    optimizer="sgd",
    dropout=0.0,
):
    """The command's network: relu hidden layers (he_uniform), each followed
    by a Dropout of ``dropout`` if given, a softmax output (glorot_uniform);
    ``optimizer`` (SGD: Nesterov when ``momentum > 0``) with a learning rate
    (default ``OPTIMIZER_RATES``) falling by ``lr_decay`` over
    ``decay_steps`` steps."""
    import fastnn
    from fastnn import optimizers

    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    if learning_rate is None:
        learning_rate = OPTIMIZER_RATES[optimizer]
    if weight_decay is None:
        weight_decay = OPTIMIZER_DECAYS.get(optimizer, 0.0)
    schedule = fastnn.ExponentialDecay(
        learning_rate, decay_rate=lr_decay, decay_steps=decay_steps
    )
    if momentum is not None and optimizer not in ("sgd", "rmsprop"):
        raise UsageError(
            f"argument --momentum: applies to sgd and rmsprop; received "
            f"--optimizer {optimizer}"
        )
    extra = {}
    if optimizer == "sgd":
        momentum = MOMENTUM if momentum is None else momentum
        extra = {"momentum": momentum, "nesterov": momentum > 0}
    elif optimizer == "rmsprop" and momentum is not None:
        extra = {"momentum": momentum}
    opt = optimizers.OPTIMIZERS[optimizer](
        learning_rate=schedule, weight_decay=weight_decay, **extra
    )
    layers = []
    for units in hidden:
        layers.append(
            fastnn.Dense(units, activation="relu", kernel_initializer="he_uniform")
        )
        if dropout:
            layers.append(fastnn.Dropout(dropout))
    layers.append(
        fastnn.Dense(10, activation="softmax", kernel_initializer="glorot_uniform")
    )
    return fastnn.Sequential(
        layers,
        input_dim=input_dim,
        optimizer=opt,
        backend=backend,
        dtype=dtype,
        seed=seed,
        metrics=("accuracy",),
    )
