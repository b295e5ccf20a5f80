"""fastnn: fast feed-forward neural networks for ordinary CPUs.

>>> import fastnn
>>> model = fastnn.Sequential(
...     [fastnn.Dense(128, activation="relu"), fastnn.Dense(10, activation="softmax")],
...     input_dim=784, optimizer=fastnn.SGD(learning_rate=0.05, momentum=0.9),
...     backend="numpy")

Importing fastnn loads neither numba nor a compiled extension; backends are
imported on first use (see :mod:`fastnn.backends`).
"""

from fastnn import datasets
from fastnn.backends import (
    BackendUnavailableError,
    available_backends,
    show_backends,
    use_backend,
)
from fastnn.callbacks import (
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from fastnn.layers import Dense, Dropout
from fastnn.model import Sequential, load
from fastnn.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop
from fastnn.progress import ProgressBar
from fastnn.schedules import CosineDecay, ExponentialDecay, StepDecay
from fastnn.threads import set_num_threads

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineDecay",
    "Dropout",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepDecay",
    "BackendUnavailableError",
    "Callback",
    "Dense",
    "EarlyStopping",
    "ExponentialDecay",
    "History",
    "ModelCheckpoint",
    "ProgressBar",
    "Sequential",
    "TerminateOnNaN",
    "available_backends",
    "datasets",
    "load",
    "set_num_threads",
    "show_backends",
    "use_backend",
]
