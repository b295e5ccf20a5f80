"""Activation codes shared by every backend.

An :class:`Activation` is an ``IntEnum``, so numba and Cython kernels receive a
plain integer. The derivative of every activation is computed from its *output*
``A`` (never from the pre-activation ``Z``), so a backward pass needs only the
buffers the forward pass kept:

====== ===================== ===============================
code   f(Z)                  f'(Z) written in terms of A
====== ===================== ===============================
LINEAR Z                     1
RELU   max(Z, 0)             1 if A > 0 else 0 (relu'(0) = 0)
SIGMOID 1 / (1 + exp(-Z))    A * (1 - A)
TANH   tanh(Z)               1 - A**2
SOFTMAX exp(Z) / sum exp(Z)  Jacobian-vector product, per row:
                             dZ = A * (dA - sum(dA * A))
====== ===================== ===============================
"""

from __future__ import annotations

from enum import IntEnum


class Activation(IntEnum):
    LINEAR = 0
    RELU = 1
    SIGMOID = 2
    TANH = 3
    SOFTMAX = 4


_NAMES = {a.name.lower(): a for a in Activation}
_NAMES[None] = Activation.LINEAR  # type: ignore[index]


def get(activation: str | Activation | None) -> Activation:
    """Resolve ``"relu"``, ``Activation.RELU`` or ``None`` (linear) to a code."""
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation.lower() in _NAMES:
        return _NAMES[activation.lower()]
    if activation is None:
        return Activation.LINEAR
    valid = ", ".join(repr(n) for n in _NAMES if n is not None)
    raise ValueError(f"activation: expected one of {valid}; received {activation!r}")
