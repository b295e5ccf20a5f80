"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` on fastnn.

Swap ``from sklearn.neural_network import MLPClassifier`` for ``from
fastnn.sklearn import MLPClassifier`` and keep your code: the parameters,
their defaults and the fitted attributes are scikit-learn's, and the
estimators work in ``Pipeline``, ``GridSearchCV``/``cross_val_score`` (they
pickle for joblib), ``clone`` and with pandas input (``feature_names_in_``).
Added: ``backend``, ``dtype`` and ``dropout``, more solvers (``"adamw"``,
``"rmsprop"``, ``"adagrad"``) and ``to_onnx``. Needs ``pip install
"fastnn[sklearn]"``.

Where scikit-learn's MLP and fastnn differ, the estimators follow
scikit-learn:

* ``alpha`` is scikit-learn's L2 term ``alpha / (2 n_batch) ||W||^2`` on the
  mean loss: fastnn's ``weight_decay = alpha / batch_size`` (the short last
  batch of an epoch takes the full batch's term, where scikit-learn divides
  by its own size);
* ``max_iter`` counts epochs; ``tol`` and ``n_iter_no_change`` stop training
  as scikit-learn's do (on the training loss, or on the validation score with
  ``early_stopping``, whose best weights are kept);
* the regressor's loss is scikit-learn's half mean squared error
  (``loss_curve_`` reports it); its gradient is fastnn's mse gradient over
  two, so SGD runs at half fastnn's rate and the weight decay doubles;
* ``learning_rate`` (``"constant"``, ``"invscaling"``, ``"adaptive"``)
  applies to ``solver="sgd"`` only, epoch by epoch, as scikit-learn's.

Weights and biases start as scikit-learn's do (uniform in ``+-sqrt(6 /
(fan_in + fan_out))``, 2 for logistic), drawn from ``random_state`` (not the
same draws). Differences that remain: a binary classifier has a two-unit
softmax output (scikit-learn: one logistic unit), so its ``coefs_[-1]`` has two
columns; multilabel targets and ``sample_weight`` are not supported; the
solvers follow ``torch.optim`` (fastnn.optimizers), which adds Adam's
``epsilon`` to the bias-corrected ``sqrt(v)`` where scikit-learn folds the
correction into the rate; ``"lbfgs"`` is not offered.

``dtype=None`` (the default) trains in float32 on float32 input and float64
otherwise, as scikit-learn keeps float32 input float32.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - exercised without scikit-learn
    raise ImportError(
        "fastnn.sklearn needs scikit-learn (>= 1.6): pip install "
        f'"fastnn[sklearn]" ({err})'
    ) from err

from fastnn import trainer
from fastnn.layers import Dense, Dropout
from fastnn.model import Sequential
from fastnn.optimizers import OPTIMIZERS

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn's.
ACTIVATIONS = {
    "identity": "linear",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
SOLVERS = tuple(OPTIMIZERS)
LEARNING_RATES = ("constant", "invscaling", "adaptive")


def _check(name, value, ok, expected):
    if not ok:
        raise ValueError(f"{name}: expected {expected}; received {value!r}")


def _number(name, value, low, high=math.inf, low_open=False, high_open=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    lo = ("(" if low_open else "[") + f"{low}, "
    hi = f"{high}" + (")" if high_open else "]")
    _check(name, value, ok, f"a number in {lo}{hi}")


def _integer(name, value, low):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    _check(name, value, ok and value >= low, f"an int >= {low}")


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, validation, the epoch loop."""

    _loss: str  # "cross_entropy" or "mse"

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        backend="auto",
        dtype=None,
        dropout=0.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype
        self.dropout = dropout

    # ------------------------------------------------------------ checks
    def _check_params(self) -> tuple[int, ...]:
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            hidden = None
        _check(
            "hidden_layer_sizes", self.hidden_layer_sizes,
            hidden is not None and all(
                isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0
                for h in hidden
            ),
            "a sequence of positive ints",
        )  # fmt: skip
        _check("activation", self.activation, self.activation in ACTIVATIONS,
               f"one of {sorted(ACTIVATIONS)}")  # fmt: skip
        _check("solver", self.solver, self.solver in SOLVERS,
               f"one of {list(SOLVERS)} ('lbfgs' is not offered)")  # fmt: skip
        _check("learning_rate", self.learning_rate,
               self.learning_rate in LEARNING_RATES,
               f"one of {list(LEARNING_RATES)}")  # fmt: skip
        _number("alpha", self.alpha, 0)
        _number("learning_rate_init", self.learning_rate_init, 0, low_open=True)
        _number("power_t", self.power_t, 0)
        _integer("max_iter", self.max_iter, 1)
        _number("tol", self.tol, 0)
        _number("momentum", self.momentum, 0, 1)
        _number("validation_fraction", self.validation_fraction, 0, 1, True, True)
        _number("beta_1", self.beta_1, 0, 1, high_open=True)
        _number("beta_2", self.beta_2, 0, 1, high_open=True)
        _number("epsilon", self.epsilon, 0, low_open=True)
        _integer("n_iter_no_change", self.n_iter_no_change, 1)
        _number("dropout", self.dropout, 0, 1, high_open=True)
        _check("dtype", self.dtype, self.dtype in (None, "float32", "float64",
               np.float32, np.float64), "None, 'float32' or 'float64'")  # fmt: skip
        if self.batch_size != "auto":
            _integer("batch_size", self.batch_size, 1)
        return hidden

    def _dtype_for(self, X) -> np.dtype:
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32 if X.dtype == np.float32 else np.float64)

    # ------------------------------------------------------------ the model
    def _optimizer(self, batch_size: int):
        """The solver with scikit-learn's alpha as fastnn's weight decay."""
        scale = 2.0 if self._loss == "mse" else 1.0  # see the module docstring
        weight_decay = scale * self.alpha / batch_size
        cls = OPTIMIZERS[self.solver]
        if self.solver == "sgd":
            return cls(
                self.learning_rate_init / scale,
                momentum=self.momentum,
                nesterov=bool(self.nesterovs_momentum and self.momentum > 0),
                weight_decay=weight_decay,
            )
        if self.solver in ("adam", "adamw"):
            return cls(
                self.learning_rate_init,
                beta_1=self.beta_1,
                beta_2=self.beta_2,
                epsilon=self.epsilon,
                weight_decay=weight_decay,
            )
        if self.solver == "rmsprop":
            return cls(self.learning_rate_init, epsilon=self.epsilon,
                       weight_decay=weight_decay)  # fmt: skip
        return cls(self.learning_rate_init, weight_decay=weight_decay)

    def _build(self, hidden, n_features, n_outputs, dtype, batch_size):
        layers = []
        for units in hidden:
            layers.append(Dense(units, activation=ACTIVATIONS[self.activation]))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        output = "softmax" if self._loss == "cross_entropy" else "linear"
        layers.append(Dense(n_outputs, activation=output))
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        model = Sequential(
            layers,
            input_dim=n_features,
            loss=self._loss,
            optimizer=self._optimizer(batch_size),
            backend=self.backend,
            dtype=dtype,
            seed=seed,
        )
        # scikit-learn's initialisation: weights and biases uniform in
        # +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic, else 6.
        factor = 2.0 if self.activation == "logistic" else 6.0
        weights = []
        for W in model.get_weights()[0::2]:
            bound = math.sqrt(factor / (W.shape[0] + W.shape[1]))
            weights.append(rng.uniform(-bound, bound, W.shape))
            weights.append(rng.uniform(-bound, bound, W.shape[1]))
        model.set_weights(weights)
        return model

    # ------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental: bool):
        hidden = self._check_params()
        first = not hasattr(self, "_model") or not (self.warm_start or incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        X, y = validate_data(
            self, X, y, reset=first, dtype=[np.float64, np.float32],
            multi_output=self._loss == "mse", y_numeric=self._loss == "mse",
        )  # fmt: skip
        dtype = self._dtype_for(X) if first else self._model.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        y = self._encode(y, first, incremental)
        n = X.shape[0]
        batch_size = min(200, n) if self.batch_size == "auto" else self.batch_size
        if batch_size > n:
            warnings.warn(
                f"batch_size: {batch_size} is larger than the {n} samples; "
                f"clipping it to {n}",
                UserWarning,
                stacklevel=3,
            )
            batch_size = n
        if first:
            self._model = self._build(hidden, X.shape[1], self._n_model_outputs(),
                                      dtype, batch_size)  # fmt: skip
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self.best_loss_ = math.inf
            self._no_improvement_count = 0
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -math.inf if self.early_stopping else None
            self.n_layers_ = len(hidden) + 2
            self.out_activation_ = (
                "softmax" if self._loss == "cross_entropy" else "identity"
            )
        X_val = y_val = None
        if self.early_stopping:
            stratify = y if self._loss == "cross_entropy" else None
            X, X_val, y, y_val = train_test_split(
                X, y, random_state=self.random_state,
                test_size=self.validation_fraction, stratify=stratify,
            )  # fmt: skip
            if X_val.shape[0] < 2:
                raise ValueError(
                    "validation_fraction: the validation set is too small; "
                    "increase validation_fraction"
                )
            batch_size = min(batch_size, X.shape[0])
        model = self._model
        args = trainer.check_fit_arguments(
            model, X, y, 1, batch_size, None, None, 0, None
        )
        best = None
        for _ in range(1 if incremental else self.max_iter):
            history = trainer.run(
                model, args.xs, args.labels, args.Y, 1, batch_size, None, [],
                None, 0, self.shuffle, trainer.LocalSteps,
            )  # fmt: skip
            loss = history.history["loss"][-1] / (2.0 if self._loss == "mse" else 1.0)
            self.n_iter_ += 1
            self.t_ += X.shape[0]
            self.loss_curve_.append(loss)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            best = self._update_no_improvement(X_val, y_val, best)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                model.optimizer.learning_rate_scale = (
                    1.0 / (self.t_ + 1) ** self.power_t
                )
            if self._no_improvement_count > self.n_iter_no_change:
                if self.solver == "sgd" and self.learning_rate == "adaptive":
                    lr = self.learning_rate_init * model.optimizer.learning_rate_scale
                    if lr > 1e-6:
                        model.optimizer.learning_rate_scale /= 5.0
                        self._no_improvement_count = 0
                        continue
                break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                    "reached and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        if best is not None:
            model.params[...] = best
        return self

    def _update_no_improvement(self, X_val, y_val, best):
        if self.early_stopping:
            score = self._score_validation(X_val, y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                best = self._model.params.copy()
            return best
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
        return best

    # ------------------------------------------------------------ fitted
    def _predict_raw(self, X):
        check_is_fitted(self, "_model")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self._model.predict(np.ascontiguousarray(X, dtype=self._model.dtype))

    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weight matrices, ``(n_in, n_out)`` each, as scikit-learn's."""
        check_is_fitted(self, "_model")
        return self._model.get_weights()[0::2]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        check_is_fitted(self, "_model")
        return self._model.get_weights()[1::2]

    @property
    def model_(self) -> Sequential:
        """The fitted :class:`fastnn.Sequential`."""
        check_is_fitted(self, "_model")
        return self._model

    def to_onnx(self, path):
        """Write the fitted network's predictions (probabilities for the
        classifier) as an ONNX graph; see :meth:`fastnn.Sequential.to_onnx`."""
        return self.model_.to_onnx(path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's ``MLPClassifier`` on fastnn (see the module docstring):
    a softmax output, the cross-entropy loss."""

    _loss = "cross_entropy"

    def _encode(self, y, first, incremental):
        check_classification_targets(y)
        if type_of_target(y) == "multilabel-indicator":
            raise ValueError("y: multilabel targets are not supported")
        y = np.ravel(y) if np.ndim(y) == 2 and np.shape(y)[1] == 1 else y
        if first and not incremental:
            self._encoder = LabelEncoder().fit(y)
            self.classes_ = self._encoder.classes_
        elif first and incremental:
            classes = getattr(self, "_partial_classes", None)
            if classes is None:
                raise ValueError(
                    "classes: expected the classes at the first partial_fit"
                )
            self._encoder = LabelEncoder().fit(classes)
            self.classes_ = self._encoder.classes_
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y: expected labels among the classes {self.classes_.tolist()}; "
                f"received {unknown.tolist()}"
            )
        return self._encoder.transform(y).astype(np.int64)

    def _n_model_outputs(self) -> int:
        self.n_outputs_ = 1
        return max(2, len(self.classes_))

    def fit(self, X, y):
        """Fit on ``(X, y)`` for ``max_iter`` epochs at most."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``; ``classes`` is required at the first call."""
        if not hasattr(self, "_model"):
            if classes is None:
                raise ValueError(
                    "classes: expected the classes at the first partial_fit"
                )
            self._partial_classes = np.unique(classes)
        return self._fit(X, y, incremental=True)

    def _score_validation(self, X, y):
        labels = self._model.predict(X).argmax(axis=1)
        return float(np.mean(labels == y))

    def predict_proba(self, X):
        """Class probabilities, ``(n, n_classes)``."""
        P = self._predict_raw(X)
        if len(self.classes_) == 1:
            return np.ones((P.shape[0], 1), P.dtype)
        return P

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        P = self.predict_proba(X)  # checks that the estimator is fitted
        return self.classes_[P.argmax(axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's ``MLPRegressor`` on fastnn (see the module docstring): a
    linear output, the squared loss."""

    _loss = "mse"

    def _encode(self, y, first, incremental):
        y = np.asarray(y)
        if first:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        y = y.reshape(y.shape[0], -1)
        if y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y: expected {self.n_outputs_} target columns; received {y.shape[1]}"
            )
        return y

    def _n_model_outputs(self) -> int:
        return self.n_outputs_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit on ``(X, y)`` for ``max_iter`` epochs at most."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, incremental=True)

    def _score_validation(self, X, y):
        from sklearn.metrics import r2_score

        return float(r2_score(y, self._model.predict(X)))

    def predict(self, X):
        P = self._predict_raw(X)
        return P.ravel() if self._y_1d else P
