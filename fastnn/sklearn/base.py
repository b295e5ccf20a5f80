"""What both estimators share: their parameters, the epoch loop over fastnn's
trainer, early stopping, warm starts and ``partial_fit``, and the fitted
attributes scikit-learn names."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted, validate_data

from fastnn import inference, trainer
from fastnn.model import Sequential
from fastnn.sklearn.config import build_model, check_params


class BaseMLP(BaseEstimator):
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

    def _dtype_for(self, X) -> np.dtype:
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32 if X.dtype == np.float32 else np.float64)

    # ------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental: bool):
        hidden = check_params(self)
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
            self._model = build_model(
                self, hidden, X.shape[1], self._n_model_outputs(), dtype, batch_size
            )
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
        # validate_data checked X (2-D, finite, n_features_in_) and X is a
        # contiguous array of the model's dtype: only the answers are left to
        # check, which spares fit a second pass over X for NaN and inf.
        labels, Y = inference.answers(model, y, X.shape[0])
        xs = np.ascontiguousarray(X)
        args = trainer.FitArguments(xs, labels, Y, 1, batch_size, None, [], None)
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
