"""scikit-learn's own estimator checks, and the estimators in scikit-learn's
machinery: Pipeline, GridSearchCV and cross_val_score with two jobs, clone,
pandas input; behaviour that follows scikit-learn's MLP."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import estimator_checks_generator

from fastnn.backends import BACKEND_NAMES
from fastnn.sklearn import MLPClassifier, MLPRegressor


def _checks():
    """(estimator, check) for both estimators on every backend: scikit-learn's
    checks, less its array-API one, which needs SCIPY_ARRAY_API set before
    SciPy is imported and tests array-API support fastnn does not claim."""
    for backend in BACKEND_NAMES:
        for estimator in (
            MLPClassifier(backend=backend, random_state=0),
            MLPRegressor(backend=backend, random_state=0),
        ):
            for est, check in estimator_checks_generator(estimator, legacy=True):
                name = getattr(check, "func", check).__name__
                if name != "check_array_api_input":
                    yield pytest.param(est, check, id=f"{est!r}-{name}")


@pytest.mark.parametrize(("estimator", "check"), list(_checks()))
def test_scikit_learn_checks(estimator, check):
    check(estimator)


X, Y = make_classification(
    400, 12, n_informative=8, n_classes=3, random_state=0, class_sep=2.0
)
XR, YR = make_regression(300, 6, n_targets=2, noise=0.1, random_state=0)


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kw)


def test_pipeline_grid_search_and_cross_val_score_with_two_jobs():
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.neural_network import MLPClassifier as SkMLP
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(
        StandardScaler(),
        MLPClassifier((16,), max_iter=200, random_state=0, backend="numpy"),
    )
    scores = _quiet(cross_val_score, pipe, X, Y, cv=3, n_jobs=2)
    sk_pipe = make_pipeline(
        StandardScaler(), SkMLP((16,), max_iter=200, random_state=0)
    )
    theirs = _quiet(cross_val_score, sk_pipe, X, Y, cv=3)
    assert scores.shape == (3,) and scores.mean() > theirs.mean() - 0.05
    grid = {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__dropout": [0, 0.2]}
    grid = GridSearchCV(pipe, grid, cv=2, n_jobs=2)
    _quiet(grid.fit, X, Y)
    assert grid.best_score_ > 0.8  # on half the data per fit (cv=2)
    assert set(grid.best_params_) == {"mlpclassifier__alpha", "mlpclassifier__dropout"}


def test_pandas_input_set_output_and_feature_names():
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    pipe = make_pipeline(
        StandardScaler().set_output(transform="pandas"),
        MLPClassifier((16,), max_iter=30, random_state=0, backend="numpy"),
    )
    _quiet(pipe.fit, frame, Y)
    mlp = pipe[-1]
    assert list(mlp.feature_names_in_) == list(frame.columns)
    assert mlp.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="feature names"):
        mlp.predict(frame[frame.columns[::-1]])
    assert pipe.predict(frame).shape == (len(Y),)


def test_clone_pickle_and_the_fitted_attributes():
    mlp = MLPClassifier((16, 8), max_iter=25, random_state=0, backend="numpy")
    unfitted = clone(mlp)
    assert unfitted.get_params() == mlp.get_params()
    _quiet(mlp.fit, X, Y)
    assert [c.shape for c in mlp.coefs_] == [(12, 16), (16, 8), (8, 3)]
    assert [b.shape for b in mlp.intercepts_] == [(16,), (8,), (3,)]
    assert mlp.n_iter_ == 25 == len(mlp.loss_curve_)
    assert mlp.best_loss_ == min(mlp.loss_curve_)
    assert mlp.n_layers_ == 4 and mlp.n_outputs_ == 1
    assert mlp.out_activation_ == "softmax"
    np.testing.assert_array_equal(mlp.classes_, [0, 1, 2])
    assert mlp.t_ == 25 * len(Y)
    copy = pickle.loads(pickle.dumps(mlp))
    np.testing.assert_array_equal(copy.predict_proba(X), mlp.predict_proba(X))
    np.testing.assert_allclose(
        np.exp(mlp.predict_log_proba(X)), mlp.predict_proba(X), rtol=1e-6
    )
    assert not hasattr(clone(mlp), "coefs_") or not hasattr(clone(mlp), "_model")


def test_string_labels_binary_and_partial_fit():
    labels = np.array(["cat", "dog"])[(Y > 0).astype(int)]
    mlp = _quiet(MLPClassifier((8,), max_iter=30, random_state=0, backend="numpy").fit,
                 X, labels)  # fmt: skip
    assert set(mlp.predict(X)) <= {"cat", "dog"}
    assert mlp.predict_proba(X).shape == (len(X), 2)
    online = MLPClassifier((8,), random_state=0, backend="numpy")
    with pytest.raises(ValueError, match="classes"):
        online.partial_fit(X[:50], Y[:50])
    online.partial_fit(X[:50], Y[:50], classes=[0, 1, 2])
    for start in range(50, 400, 50):
        online.partial_fit(X[start : start + 50], Y[start : start + 50])
    assert online.n_iter_ == 8 and online.t_ == 400
    with pytest.raises(ValueError, match="labels among the classes"):
        online.partial_fit(X[:5], np.full(5, 7))


def test_early_stopping_keeps_the_best_validation_weights():
    mlp = MLPClassifier(
        (16,), max_iter=200, early_stopping=True, n_iter_no_change=3,
        random_state=0, backend="numpy", learning_rate_init=0.05,
    )  # fmt: skip
    mlp.fit(X, Y)
    assert mlp.n_iter_ < 200
    assert len(mlp.validation_scores_) == mlp.n_iter_
    assert mlp.best_validation_score_ == max(mlp.validation_scores_)
    assert mlp.n_iter_ - 1 - int(np.argmax(mlp.validation_scores_)) >= 3


def test_warm_start_continues_and_max_iter_counts_epochs():
    mlp = MLPRegressor((16,), max_iter=5, warm_start=True, random_state=0,
                       backend="numpy", tol=0.0)  # fmt: skip
    _quiet(mlp.fit, XR, YR)
    first = mlp.coefs_[0].copy()
    _quiet(mlp.fit, XR, YR)
    assert mlp.n_iter_ == 10 and len(mlp.loss_curve_) == 10
    assert not np.array_equal(mlp.coefs_[0], first)
    assert mlp.predict(XR).shape == YR.shape


def test_regressor_reports_scikit_learns_half_squared_loss():
    mlp = _quiet(
        MLPRegressor((8,), max_iter=3, random_state=0, backend="numpy", alpha=0.0,
                     dtype="float64", shuffle=False).fit, XR, YR[:, 0],
    )  # fmt: skip
    model = mlp.model_
    assert model.loss == 1  # mse: fastnn's mean of squares
    # The last epoch's loss is the batch mean of half the mean squares.
    assert mlp.loss_curve_[-1] == pytest.approx(model.history.history["loss"][-1] / 2)
    assert mlp.predict(XR).shape == (len(XR),)


def test_alpha_is_scikit_learns_l2_on_the_batch_mean():
    """alpha / (2 n_batch) ||W||^2 on the mean loss is weight decay alpha /
    batch_size; the regressor's gradient is fastnn's mse gradient over two,
    so its decay doubles (see fastnn.sklearn)."""
    for cls, y, scale in ((MLPClassifier, Y, 1.0), (MLPRegressor, XR[:, 0], 2.0)):
        mlp = cls((8,), alpha=0.3, batch_size=50, max_iter=1, backend="numpy")
        _quiet(mlp.fit, X[: len(y)], y)
        assert mlp.model_.optimizer.weight_decay == pytest.approx(scale * 0.3 / 50)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"solver": "lbfgs"}, "solver"),
        ({"activation": "softplus"}, "activation"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
        ({"alpha": -1.0}, "alpha"),
        ({"beta_1": 1.0}, "beta_1"),
        ({"dropout": 1.0}, "dropout"),
        ({"learning_rate": "optimal"}, "learning_rate"),
        ({"max_iter": 0}, "max_iter"),
        ({"dtype": "float16"}, "dtype"),
        ({"alpha": float("inf")}, "alpha"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        MLPClassifier(backend="numpy", **kwargs).fit(X, Y)


def test_every_solver_and_dropout_learn_on_every_backend(backend_name):
    for solver in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
        rate = 0.05 if solver in ("sgd", "adagrad") else 0.005
        mlp = MLPClassifier((32,), solver=solver, learning_rate_init=rate,
                            max_iter=30, dropout=0.1, random_state=0,
                            backend=backend_name)  # fmt: skip
        _quiet(mlp.fit, X, Y)
        assert mlp.score(X, Y) > 0.85, solver


def test_float32_input_trains_in_float32():
    mlp = _quiet(MLPClassifier((8,), max_iter=3, backend="numpy").fit,
                 X.astype(np.float32), Y)  # fmt: skip
    assert mlp.model_.dtype == np.float32
    assert mlp.predict_proba(X).dtype == np.float32
    mlp = _quiet(MLPClassifier((8,), max_iter=3, backend="numpy").fit, X, Y)
    assert mlp.model_.dtype == np.float64


def test_to_onnx_round_trips(tmp_path):
    import onnxruntime

    mlp = MLPClassifier(
        (16,), max_iter=10, dropout=0.2, random_state=0, backend="numpy"
    )
    _quiet(mlp.fit, X.astype(np.float32), Y)
    path = mlp.to_onnx(tmp_path / "mlp.onnx")
    session = onnxruntime.InferenceSession(str(path))
    name = session.get_inputs()[0].name
    got = session.run(None, {name: X.astype(np.float32)})[0]
    np.testing.assert_allclose(got, mlp.predict_proba(X), rtol=1e-5, atol=1e-6)
