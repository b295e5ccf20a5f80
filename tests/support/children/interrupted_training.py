"""A training run to interrupt: ``python interrupted_training.py FOLDER EPOCHS``.

Run by ``reliability/test_interrupt.py``, which kills it (SIGKILL) at a
checkpoint and runs it again. It trains a 20-128-3 net on seeded data for
``EPOCHS`` epochs, checkpointing to ``FOLDER/ckpt.npz`` after every epoch and
resuming from it when it exists, then saves the model to ``FOLDER/final.npz``.
"""

import sys
from pathlib import Path

import numpy as np

import fastnn

out, epochs = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.normal(size=(12000, 20)).astype(np.float32)
y = (x[:, :3].sum(axis=1) > 0).astype(int) + (x[:, 3] > 1)
model = fastnn.Sequential(
    [fastnn.Dense(128, activation="relu"), fastnn.Dense(3, activation="softmax")],
    input_dim=20,
    backend="numpy",
    seed=1,
    optimizer=fastnn.SGD(0.05, momentum=0.9, weight_decay=1e-4),
)
ckpt = out / "ckpt.npz"
resume = ckpt if ckpt.exists() else None
model.fit(
    x,
    y,
    epochs=epochs,
    batch_size=8,
    verbose=0,
    resume=resume,
    callbacks=[fastnn.ModelCheckpoint(ckpt)],
)
model.save(out / "final.npz")
