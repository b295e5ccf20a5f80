"""benchmarks/paired.py: the interleaving and the statistics (its timings are
measurements, not tested here), and one tiny end-to-end run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "paired.py"
_spec = importlib.util.spec_from_file_location("fastnn_benchmarks_paired", _PATH)
paired = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired)


def test_pairs_alternate_which_contender_goes_first():
    assert paired.pair_order(4) == [(0, 1), (1, 0), (0, 1), (1, 0)]


def test_summary_is_the_median_of_per_pair_ratios():
    # A drifting machine: the second contender is 2x the first in every pair,
    # while the epochs themselves vary 3x over the run.
    first = [1.0, 3.0, 2.0, 1.5, 2.5]
    second = [2 * t for t in first]
    result = paired.summarize(first, second)
    assert result["ratio_median"] == result["ratio_q1"] == result["ratio_q3"] == 2.0
    assert result["pairs"] == 5
    assert result["first_median_s"] == 2.0 and result["second_median_s"] == 4.0
    # Two pairs: the quartiles stay within the two ratios measured.
    two = paired.summarize([1.0, 1.0], [0.5, 3.0])
    assert (two["ratio_q1"], two["ratio_median"], two["ratio_q3"]) == (0.5, 1.75, 3.0)
    with pytest.raises(ValueError, match="^first, second: expected equal"):
        paired.summarize([1.0], [])


@pytest.mark.slow
def test_a_tiny_paired_run(mnist, tmp_path):
    out = tmp_path / "paired.json"
    code = paired.main(
        ["numpy", "numpy", "--config", "S", "--pairs", "2", "--pause", "0",
         "--samples", "640", "--json", str(out)]
    )  # fmt: skip
    assert code == 0
    import json

    result = json.loads(out.read_text())
    assert [len(t) for t in result["epochs"]] == [2, 2]
    assert all(t > 0 for t in result["epochs"][0] + result["epochs"][1])
    assert result["ratio_q1"] <= result["ratio_median"] <= result["ratio_q3"]


def test_the_floor_takes_no_checkout_or_options():
    assert paired.parse_contender("floor") == ("floor", "", {})
    for bad in ("floor+gemm=own", "floor@/elsewhere"):
        with pytest.raises(SystemExit, match="floor is the machine's GEMM rate"):
            paired.parse_contender(bad)


def test_epoch_flops_counts_every_product_of_an_epoch():
    from fastnn import bench

    # L64 per sample: 784 x 512 forward and dW (no dX into the input), then
    # two 512 x 512 layers and a 512 x 10 one, each forward, dW and dX.
    per_sample = 4 * 784 * 512 + 2 * 6 * 512 * 512 + 6 * 512 * 10
    assert bench.epoch_flops("L64", 60_000) == per_sample * 60_000 == 286_924_800_000
    assert bench.epoch_flops("L256", 1) == bench.epoch_flops("L64", 1)
    assert bench.epoch_flops("S", 2) == 2 * (4 * 784 * 128 + 6 * 128 * 10)
    with pytest.raises(ValueError, match="^config: expected one of"):
        bench.epoch_flops("XL", 1)


@pytest.mark.slow
def test_a_tiny_floor_run(mnist, tmp_path):
    # The floor's process reports positive times scaled to the epoch's FLOPs:
    # one 2048^3 product for these 640 samples' 0.26 GFLOP, scaled down 67x.
    out = tmp_path / "floor.json"
    assert paired.main(
        ["floor", "numpy", "--config", "S", "--pairs", "2", "--pause", "0",
         "--samples", "640", "--json", str(out)]
    ) == 0  # fmt: skip
    import json

    result = json.loads(out.read_text())
    assert result["contenders"] == ["floor", "numpy"]
    floor_epochs, numpy_epochs = result["epochs"]
    assert all(0 < t < min(numpy_epochs) for t in floor_epochs)
