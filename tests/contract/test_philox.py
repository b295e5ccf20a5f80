"""The dropout masks' counter-based generator: Philox4x32-10 against Random123's
known answers, and the mask contract (``fastnn._philox``) bit for bit in NumPy,
numba and a plain-Python scalar spec written here. (The C version,
``_philox.h``, is tested through the Cython kernels that use it.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.backends import REQUIRED
from support.child import ROOT, run_program

from fastnn import _philox

U32 = 2**32

# Random123's known-answer vectors for philox4x32_10: tests/kat_vectors of
# https://github.com/DEShawResearch/random123 (commit 9545ff64, lines 27-29):
# counter (4 words), key (2 words), expected output (4 words).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
    ),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


# --------------------------------------------------------------------------- #
# The spec, one element at a time, in Python ints
# --------------------------------------------------------------------------- #
def spec_philox(ctr, key):
    c, k = list(ctr), list(key)
    for round_ in range(10):
        if round_:
            k = [(k[0] + 0x9E3779B9) % U32, (k[1] + 0xBB67AE85) % U32]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 % U32, (p0 >> 32) ^ c[3] ^ k[1], p0 % U32]
    return tuple(c)


def spec_keep(seed, step, layer, row_offset, rows, n_out, threshold):
    keep = np.empty((rows, n_out), np.uint8)
    key = (seed % U32, seed >> 32)
    for r in range(rows):
        for c in range(n_out):
            e = (row_offset + r) * n_out + c
            ctr = ((e >> 2) % U32, layer, step % U32, step >> 32)
            keep[r, c] = spec_philox(ctr, key)[e & 3] >= threshold
    return keep


def random_cases(n, seed):
    """Arguments of dropout_keep, with the edges mixed in: seeds near 2**64 - 1,
    steps >= 2**32, layers up to 2**32 - 1, flat indices past 2**34 (the block
    counter wraps), odd shapes and offsets, every kind of threshold."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        seed_ = int(rng.integers(0, 2**64, dtype=np.uint64))
        if i % 4 == 0:
            seed_ = 2**64 - 1 - int(rng.integers(0, 3))
        step = int(rng.integers(0, 1000)) if i % 2 else int(rng.integers(U32, 2**63))
        layer = int(rng.integers(0, 8)) if i % 3 else int(rng.integers(0, U32))
        rows, n_out = int(rng.integers(1, 7)), int(rng.integers(1, 19))
        row_offset = int(rng.integers(0, 10**6)) if i % 5 else 2**34 + i
        threshold = [
            _philox.threshold_for(0.5),
            _philox.threshold_for(0.1),
            int(rng.integers(0, U32)),
            1,
            U32 - 1,
        ][i % 5]
        cases.append((seed_, step, layer, row_offset, rows, n_out, threshold))
    return cases


CASES = random_cases(60, seed=2024)


@pytest.fixture(scope="module")
def nbp():
    """fastnn._kernels._numba_philox; skips without numba unless required."""
    try:
        import numba  # noqa: F401
    except ImportError as err:
        if "numba" in REQUIRED:
            pytest.fail(f"numba is required (FASTNN_REQUIRE_BACKENDS): {err}")
        pytest.skip(f"numba unavailable: {err}")
    from fastnn._kernels import _numba_philox

    return _numba_philox


def numba_keep(nbp, seed, step, layer, row_offset, rows, n_out, threshold, split=()):
    """The whole mask from dropout_keep_span over the column spans cut at
    ``split``; untouched entries would stay 7."""
    keep = np.full((rows, n_out), 7, np.uint8)
    cuts = [0, *split, n_out]
    for c0, c1 in zip(cuts[:-1], cuts[1:], strict=True):
        nbp.dropout_keep_span(
            np.uint64(seed),
            step,
            layer,
            row_offset,
            rows,
            n_out,
            c0,
            c1,
            threshold,
            keep,
        )
    return keep


# --------------------------------------------------------------------------- #
# Known answers
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("ctr, key, expected", KAT)
def test_known_answers_spec(ctr, key, expected):
    assert spec_philox(ctr, key) == expected


@pytest.mark.parametrize("ctr, key, expected", KAT)
def test_known_answers_numpy(ctr, key, expected):
    out = _philox.philox4x32_10(np.array([ctr], np.uint32), np.array(key, np.uint32))
    assert out.dtype == np.uint32 and out.shape == (1, 4)
    assert tuple(int(w) for w in out[0]) == expected


@pytest.mark.parametrize("ctr, key, expected", KAT)
def test_known_answers_numba(nbp, ctr, key, expected):
    out = nbp.philox4x32_10(*ctr, *key)
    assert tuple(int(w) for w in out) == expected
    # Compiled, it returns four uint32 (boxed to Python ints on the way out).
    for sig in getattr(nbp.philox4x32_10, "nopython_signatures", []):
        assert str(sig.return_type) == "UniTuple(uint32 x 4)", sig


def test_numpy_philox_is_the_spec_on_random_counters(nbp):
    rng = np.random.default_rng(7)
    counters = rng.integers(0, U32, (200, 4), dtype=np.uint32)
    key = rng.integers(0, U32, 2, dtype=np.uint32)
    out = _philox.philox4x32_10(counters, key)
    k = tuple(int(x) for x in key)
    for ctr, words in zip(counters, out, strict=True):
        ctr = tuple(int(x) for x in ctr)
        assert tuple(int(w) for w in words) == spec_philox(ctr, k)
        assert tuple(int(w) for w in nbp.philox4x32_10(*ctr, *k)) == spec_philox(ctr, k)


# --------------------------------------------------------------------------- #
# The mask: NumPy, numba and the spec agree bit for bit
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("case", CASES)
def test_numpy_mask_is_the_spec(case):
    keep = _philox.dropout_keep(*case)
    assert keep.dtype == np.uint8 and keep.shape == case[4:6]
    np.testing.assert_array_equal(keep, spec_keep(*case))


@pytest.mark.parametrize("case", CASES)
def test_numba_mask_is_numpy_whole_and_in_column_spans(nbp, case):
    seed, step, layer, row_offset, rows, n_out, threshold = case
    expected = _philox.dropout_keep(*case)
    np.testing.assert_array_equal(numba_keep(nbp, *case), expected)
    # Two halves split anywhere (mostly not at a multiple of 4), and three parts.
    mid = (seed % 1000) % (n_out + 1)
    np.testing.assert_array_equal(numba_keep(nbp, *case, split=(mid,)), expected)
    if n_out >= 3:
        parts = (1, n_out - 1) if n_out % 2 else (n_out // 2 - 1, n_out // 2 + 1)
        np.testing.assert_array_equal(numba_keep(nbp, *case, split=parts), expected)


def test_numba_span_writes_only_its_columns(nbp):
    keep = np.full((5, 13), 7, np.uint8)
    args = (np.uint64(2**64 - 2), 2**33 + 1, 3, 17, 5, 13)
    nbp.dropout_keep_span(*args, 3, 10, _philox.threshold_for(0.4), keep)
    expected = _philox.dropout_keep(
        2**64 - 2, 2**33 + 1, 3, 17, 5, 13, _philox.threshold_for(0.4)
    )
    np.testing.assert_array_equal(keep[:, 3:10], expected[:, 3:10])
    assert (keep[:, :3] == 7).all() and (keep[:, 10:] == 7).all()


def test_mask_does_not_depend_on_how_rows_are_batched():
    args = (12345, 99, 2)
    whole = _philox.dropout_keep(*args, 0, 23, 9, 2**31)
    parts = [
        _philox.dropout_keep(*args, a, b - a, 9, 2**31)
        for a, b in [(0, 5), (5, 6), (6, 23)]
    ]
    np.testing.assert_array_equal(np.vstack(parts), whole)


def test_seed_step_and_layer_each_change_the_mask():
    base = (2**64 - 1, 2**32 + 3, 1, 0, 8, 64, 2**31)
    keep = _philox.dropout_keep(*base)
    for i in range(3):
        other = list(base)
        other[i] -= 1
        assert (_philox.dropout_keep(*other) != keep).any(), i


@pytest.mark.parametrize("rate", [0.05, 0.3, 0.5, 0.9])
def test_drop_fraction_is_close_to_the_rate(nbp, rate):
    """1e6 elements, fixed seed: the bound (5 sigma of the binomial) is checked
    on one fixed mask, so it cannot flake."""
    threshold = _philox.threshold_for(rate)
    args = (2**63 + 11, 2**32 + 5, 4, 3, 1000, 1000, threshold)
    keep = _philox.dropout_keep(*args)
    p, n = threshold / U32, keep.size
    dropped = 1 - keep.mean()
    assert abs(dropped - p) <= 5 * math.sqrt(p * (1 - p) / n), (dropped, p)
    np.testing.assert_array_equal(numba_keep(nbp, *args, split=(333, 501)), keep)


def test_threshold_zero_keeps_everything(nbp):
    for args in [(0, 0, 0, 0, 7, 9, 0), (2**64 - 1, 2**40, U32 - 1, 5, 3, 1001, 0)]:
        assert (_philox.dropout_keep(*args) == 1).all()
        assert (numba_keep(nbp, *args, split=(2,)) == 1).all()
        assert (spec_keep(*args[:4], 2, args[5], 0) == 1).all()


def test_threshold_for():
    assert _philox.threshold_for(0) == 0
    assert _philox.threshold_for(0.0) == 0
    assert _philox.threshold_for(0.5) == 2**31
    assert _philox.threshold_for(np.float32(0.25)) == 2**30
    assert _philox.threshold_for(0.1) == int(0.1 * 2**32)  # truncated
    assert _philox.threshold_for(math.nextafter(1.0, 0.0)) == U32 - 1
    assert _philox.threshold_for(5e-324) == 0


@pytest.mark.parametrize("rate", [1.0, -0.1, -1e-300, 2, math.nan, math.inf])
def test_threshold_for_rejects_rates_out_of_range(rate):
    with pytest.raises(ValueError, match=r"^rate: expected a float in \[0, 1\); "):
        _philox.threshold_for(rate)


@pytest.mark.parametrize("rate", ["0.5", None, True])
def test_threshold_for_rejects_non_numbers(rate):
    with pytest.raises(TypeError, match=r"^rate: expected"):
        _philox.threshold_for(rate)


# --------------------------------------------------------------------------- #
# Bad arguments
# --------------------------------------------------------------------------- #
GOOD = dict(seed=1, step=2, layer=3, row_offset=4, rows=5, n_out=6, threshold=7)


@pytest.mark.parametrize(
    "name, value",
    [
        ("seed", -1),
        ("seed", 2**64),
        ("step", -1),
        ("step", 2**63),
        ("layer", -1),
        ("layer", U32),
        ("row_offset", -1),
        ("rows", -1),
        ("n_out", -1),
        ("threshold", -1),
        ("threshold", U32),
    ],
)
def test_dropout_keep_rejects_out_of_range(name, value):
    with pytest.raises(
        ValueError, match=rf"^{name}: expected an int .*; received {value}$"
    ):
        _philox.dropout_keep(**{**GOOD, name: value})


@pytest.mark.parametrize("name", list(GOOD))
@pytest.mark.parametrize("value", [1.0, True, "3", None])
def test_dropout_keep_rejects_non_ints(name, value):
    with pytest.raises(TypeError, match=rf"^{name}: expected an int"):
        _philox.dropout_keep(**{**GOOD, name: value})


def test_dropout_keep_accepts_numpy_ints_and_empty_shapes():
    keep = _philox.dropout_keep(
        np.uint64(2**64 - 1), np.int64(5), np.uint32(3), np.int32(0), 2, 3, np.uint32(9)
    )
    np.testing.assert_array_equal(keep, spec_keep(2**64 - 1, 5, 3, 0, 2, 3, 9))
    assert _philox.dropout_keep(1, 2, 3, 4, 0, 6, 7).shape == (0, 6)
    assert _philox.dropout_keep(1, 2, 3, 4, 5, 0, 7).shape == (5, 0)


def test_dropout_keep_rejects_flat_indices_past_int64():
    with pytest.raises(ValueError, match=r"^row_offset, rows, n_out: expected"):
        _philox.dropout_keep(**{**GOOD, "row_offset": 2**62, "n_out": 2})


@pytest.mark.parametrize(
    "counters, key, name",
    [
        (np.zeros((3, 4), np.int64), np.zeros(2, np.uint32), "counters"),
        (np.zeros((3, 3), np.uint32), np.zeros(2, np.uint32), "counters"),
        (np.zeros(4, np.uint32), np.zeros(2, np.uint32), "counters"),
        (np.zeros((3, 4), np.uint32), np.zeros(3, np.uint32), "key"),
        (np.zeros((3, 4), np.uint32), np.zeros(2, np.uint64), "key"),
    ],
)
def test_philox_rejects_bad_arrays(counters, key, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected a uint32 array"):
        _philox.philox4x32_10(counters, key)


# --------------------------------------------------------------------------- #
# Imports and the pure-Python fallback
# --------------------------------------------------------------------------- #
def _run(name, env=None):
    run = run_program(name, env=env, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def test_numpy_version_imports_without_numba():
    out = _run("philox_without_numba")
    assert int(out) == int(_philox.dropout_keep(1, 2, 3, 4, 5, 6, 2**31).sum())


def test_numba_version_runs_undecorated(nbp):
    out = _run("philox_numba_undecorated", env={"NUMBA_DISABLE_JIT": "1"})
    assert "pure python ok" in out
