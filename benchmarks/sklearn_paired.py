"""fastnn.sklearn against scikit-learn's MLP, fit for fit, paired.

    python -m benchmarks.sklearn_paired [--pairs 3] [--json out.json]

Both estimators get the same hyper-parameters (``solver="adam"``, float32
input, ``hidden_layer_sizes=(256,)``, ``batch_size=200``, ``max_iter``
epochs with ``tol=0`` so that both run every epoch) on two datasets: MNIST
(60,000 training images, 10 epochs) and
``make_classification(100_000, 100, n_informative=40, n_classes=5)`` (80/20
split, 10 epochs). After one warm-up fit each, whole fits alternate (A B, B A,
...) with a pause; pair ``i`` fits both with ``random_state=i``. The result per
dataset is the median of the per-pair time ratios (scikit-learn over fastnn:
how many times faster fastnn is) and both test accuracies, per seed and
averaged over the seeds (one seed's accuracy differs from the next by a few
tenths of a point on these data, as much as the two libraries differ).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import numpy as np


def datasets():
    import fastnn

    (x, y), (xt, yt) = fastnn.datasets.load_mnist(dtype="float32")
    yield "mnist", (x, y, xt, yt)
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, Y = make_classification(
        100_000, 100, n_informative=40, n_classes=5, random_state=0
    )
    x, xt, y, yt = train_test_split(X.astype(np.float32), Y, test_size=0.2,
                                    random_state=0)  # fmt: skip
    yield "make_classification", (x, y, xt, yt)


def contenders(epochs: int, backend: str, seed: int = 0):
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastnn.sklearn import MLPClassifier

    common = dict(
        hidden_layer_sizes=(256,), solver="adam", batch_size=200,
        max_iter=epochs, tol=0.0, random_state=seed,
    )  # fmt: skip
    return {
        "scikit-learn": lambda: SkMLP(**common),
        "fastnn": lambda: MLPClassifier(backend=backend, **common),
    }


def timed_fit(make, x, y, xt, yt):
    estimator = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        estimator.fit(x, y)
        seconds = time.perf_counter() - start
    return seconds, float(estimator.score(xt, yt))


def run(pairs=3, epochs=10, backend="auto", pause=1.0):
    results = {}
    for name, (x, y, xt, yt) in datasets():
        warm = contenders(1, backend)
        for key in warm:  # imports, compilation, caches
            timed_fit(warm[key], x[:2000], y[:2000], xt[:200], yt[:200])
        times = {k: [] for k in warm}
        scores = {k: [] for k in warm}
        for i in range(pairs):
            makers = contenders(epochs, backend, seed=i)
            order = list(makers) if i % 2 == 0 else list(makers)[::-1]
            for key in order:
                seconds, score = timed_fit(makers[key], x, y, xt, yt)
                times[key].append(seconds)
                scores[key].append(score)
                time.sleep(pause)
        ratios = sorted(
            a / b for a, b in zip(times["scikit-learn"], times["fastnn"], strict=True)
        )
        results[name] = {
            "pairs": pairs,
            "epochs": epochs,
            "speedup_median": statistics.median(ratios),
            "speedup_min": ratios[0],
            "speedup_max": ratios[-1],
            "seconds": times,
            "seeds": list(range(pairs)),
            "test_accuracy": scores,
            "test_accuracy_mean": {k: statistics.fmean(v) for k, v in scores.items()},
        }
        gaps = [100 * (a - b) for a, b in
                zip(scores["fastnn"], scores["scikit-learn"], strict=True)]  # fmt: skip
        print(
            f"{name}: fastnn {statistics.median(times['fastnn']):.2f} s, "
            f"scikit-learn {statistics.median(times['scikit-learn']):.2f} s per fit "
            f"of {epochs} epochs: {statistics.median(ratios):.2f}x "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}); test accuracy over seeds "
            f"0-{pairs - 1}: fastnn {100 * statistics.fmean(scores['fastnn']):.2f}%, "
            f"scikit-learn {100 * statistics.fmean(scores['scikit-learn']):.2f}% "
            f"(fastnn - scikit-learn per seed: "
            + ", ".join(f"{g:+.2f}" for g in gaps)
            + " points)",
            flush=True,
        )
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results = run(args.pairs, args.epochs, args.backend)
    if args.json:
        from fastnn.io import atomic_write

        text = json.dumps(results, indent=1) + "\n"
        atomic_write(args.json, lambda f: f.write(text.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
