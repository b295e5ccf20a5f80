"""Signature parity: every backend exports the reference's contract functions
(``fastnn.reference``), each with the reference's signature, and follows the
``fastnn.contract.Backend`` protocol that the tools follow."""

from __future__ import annotations

import inspect

import pytest
from support.contract import CONTRACT

from fastnn import reference as ref

#: The contract's functions as the reference exports them.
EXPORTED = list(ref.__all__)


def test_contract_names_match_reference(compiled_backend):
    assert list(compiled_backend.__all__) == EXPORTED
    assert isinstance(compiled_backend.NAME, str)


@pytest.mark.parametrize("name", EXPORTED)
def test_signature_matches_reference(compiled_backend, name):
    expected = inspect.signature(getattr(ref, name))
    assert inspect.signature(getattr(compiled_backend, name)) == expected


def test_signature_parity_with_reference(compiled_backend):
    for name in CONTRACT:
        assert inspect.signature(getattr(compiled_backend, name)) == inspect.signature(
            getattr(ref, name)
        ), name


def test_every_backend_has_the_protocols_functions(backend_name):
    """``fastnn.contract.Backend`` (the type the tools follow) names exactly
    the contract, with the reference's parameters."""
    from fastnn import contract
    from fastnn.backends import get_backend

    backend = get_backend(backend_name)
    members = {
        name
        for name, value in vars(contract.Backend).items()
        if callable(value) and not name.startswith("_")
    }
    assert members == set(CONTRACT)
    assert list(contract.FUNCTIONS) == CONTRACT
    assert list(backend.__all__) == CONTRACT
    for name in CONTRACT:
        protocol = list(inspect.signature(getattr(contract.Backend, name)).parameters)
        assert protocol[0] == "self"
        got = list(inspect.signature(getattr(backend, name)).parameters)
        assert got == protocol[1:], name
    assert isinstance(backend.NAME, str)
