"""Each framework's MNIST epoch, set up once: ``setup(name, config, x, y)``
returns ``epoch(order) -> seconds``.

Every framework trains the same network (``fastnn.bench.CONFIGS``: ReLU hidden
layers, softmax cross-entropy) with the same batch size, learning rate 0.05,
momentum 0.9 and L2 1e-4, float32, on the arrays it is given, in the batch
order it is given (``order``, a permutation of the rows). The model and the
optimizer state persist from one ``epoch`` call to the next, as in one
training run. Each framework is imported inside its setup, so a missing one
raises ``ImportError`` there, and nothing here is imported by ``fastnn``.

The formulations are the ones a user of each would write: fastnn's
``fit``, PyTorch in eager mode, JAX with the epoch as one jitted
``lax.scan``, Keras's ``fit`` and scikit-learn's ``partial_fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from fastnn import bench
from fastnn.bench.configs import check_config

__all__ = ["DISTRIBUTIONS", "PEERS", "Epoch", "setup", "version"]

#: One timed epoch in the given batch order: ``epoch(order) -> seconds``.
Epoch = Callable[[np.ndarray], float]

LR, MOMENTUM, WD = bench.LEARNING_RATE, bench.MOMENTUM, bench.WEIGHT_DECAY

#: The distribution whose version each peer reports.
DISTRIBUTIONS = {
    "pytorch": "torch",
    "jax": "jax",
    "keras": "keras",
    "sklearn": "scikit-learn",
}


def fastnn_epoch(backend: str, config: str, x, y) -> Epoch:
    model = bench.build_model(config, backend)
    bs = bench.CONFIGS[config].batch_size

    def epoch(order):
        xs, ys = x[order], y[order]  # the same order; fastnn shuffles itself
        t = time.perf_counter()
        model.fit(xs, ys, epochs=1, batch_size=bs, verbose=0, shuffle=False)
        return time.perf_counter() - t

    return epoch


def torch_epoch(config: str, x, y) -> Epoch:
    import torch

    sizes, bs = bench.CONFIGS[config].sizes, bench.CONFIGS[config].batch_size
    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-2], sizes[-1]))
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, Y = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(order):
        idx = torch.from_numpy(order)
        t = time.perf_counter()
        for s in range(0, len(order), bs):
            b = idx[s : s + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[b]), Y[b])
            loss.backward()
            opt.step()
        return time.perf_counter() - t

    return epoch


def jax_epoch(config: str, x, y) -> Epoch:
    import jax
    import jax.numpy as jnp

    sizes, bs = bench.CONFIGS[config].sizes, bench.CONFIGS[config].batch_size
    key = jax.random.PRNGKey(0)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        lim = np.sqrt(6 / a)
        params.append(
            (
                jax.random.uniform(sub, (a, b), jnp.float32, -lim, lim),
                jnp.zeros(b, jnp.float32),
            )
        )
    state = [params, jax.tree_util.tree_map(jnp.zeros_like, params)]

    def loss_fn(p, xb, yb):
        h = xb
        for W, b in p[:-1]:
            h = jax.nn.relu(h @ W + b)
        z = h @ p[-1][0] + p[-1][1]
        return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), yb])

    def step(carry, batch):
        p, v = carry
        xb, yb = batch
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        g = [(gW + WD * W, gb) for (gW, gb), (W, _) in zip(g, p, strict=True)]
        v = jax.tree_util.tree_map(lambda vv, gg: MOMENTUM * vv + gg, v, g)
        p = jax.tree_util.tree_map(lambda pp, vv: pp - LR * vv, p, v)
        return (p, v), loss

    @jax.jit
    def scan_epoch(p, v, xb, yb):
        (p, v), losses = jax.lax.scan(step, (p, v), (xb, yb))
        return p, v, losses

    X, Y = jnp.asarray(x), jnp.asarray(y)

    def epoch(order):
        n_full = (len(order) // bs) * bs  # lax.scan needs equal batches
        o = jnp.asarray(order[:n_full])
        t = time.perf_counter()
        xb = X[o].reshape(-1, bs, x.shape[1])
        yb = Y[o].reshape(-1, bs)
        state[0], state[1], losses = scan_epoch(state[0], state[1], xb, yb)
        losses.block_until_ready()
        return time.perf_counter() - t

    return epoch


def keras_epoch(config: str, x, y) -> Epoch:
    import keras

    sizes, bs = bench.CONFIGS[config].sizes, bench.CONFIGS[config].batch_size
    model = keras.Sequential(
        [keras.Input((sizes[0],))]
        + [
            keras.layers.Dense(
                s, activation="relu", kernel_regularizer=keras.regularizers.L2(WD / 2)
            )
            for s in sizes[1:-1]
        ]
        + [keras.layers.Dense(sizes[-1])]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    def epoch(order):
        t = time.perf_counter()
        model.fit(x[order], y[order], batch_size=bs, epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - t

    return epoch


def sklearn_epoch(config: str, x, y) -> Epoch:
    from sklearn.neural_network import MLPClassifier

    sizes, bs = bench.CONFIGS[config].sizes, bench.CONFIGS[config].batch_size
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(sizes[1:-1]),
        solver="sgd",
        learning_rate_init=LR,
        momentum=MOMENTUM,
        alpha=WD,
        batch_size=bs,
        nesterovs_momentum=False,
        shuffle=False,
        max_iter=1,
    )
    classes = np.arange(10)

    def epoch(order):
        t = time.perf_counter()
        clf.partial_fit(x[order], y[order], classes=classes)
        return time.perf_counter() - t

    return epoch


#: The peers, by the name the command line and the report use.
PEERS: dict[str, Callable[..., Epoch]] = {
    "pytorch": torch_epoch,
    "jax": jax_epoch,
    "keras": keras_epoch,
    "sklearn": sklearn_epoch,
}


def setup(name: str, config: str, x, y) -> Epoch:
    """Framework ``name`` (``fastnn-BACKEND`` or a key of :data:`PEERS`) set up
    for ``config`` on ``(x, y)``; ``ImportError`` if it is not installed."""
    check_config(config)
    if name.startswith("fastnn-"):
        return fastnn_epoch(name.removeprefix("fastnn-"), config, x, y)
    if name not in PEERS:
        raise ValueError(
            f"name: expected fastnn-BACKEND or one of {', '.join(PEERS)}; "
            f"received {name!r}"
        )
    return PEERS[name](config, x, y)


def version(name: str) -> str | None:
    """The installed version of framework ``name``'s distribution, if known."""
    from importlib import metadata

    dist = "fastnn" if name.startswith("fastnn-") else DISTRIBUTIONS.get(name)
    try:
        return metadata.version(dist) if dist else None
    except metadata.PackageNotFoundError:
        return None
