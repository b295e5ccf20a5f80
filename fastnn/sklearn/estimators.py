"""``MLPClassifier`` and ``MLPRegressor``: how each encodes its targets, reads
its outputs and scores a validation split (see :mod:`fastnn.sklearn`)."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target

from fastnn.sklearn.base import BaseMLP


class MLPClassifier(ClassifierMixin, BaseMLP):
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


class MLPRegressor(RegressorMixin, BaseMLP):
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
