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

try:  # validate_data is scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised without scikit-learn
    raise ImportError(
        "fastnn.sklearn needs scikit-learn (>= 1.6): pip install "
        f'"fastnn[sklearn]" ({err})'
    ) from err

from fastnn.sklearn.estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
