"""benchmarks/peers: the paired schedule, its bookkeeping, the worker protocol
and the skipping of frameworks that are not installed, with fake epoch
functions (no peer framework needed), and one tiny end-to-end run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def peers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.peers import pairing, report, run_peers, workers

    return pairing, report, run_peers, workers


# The machine's speed at the moment an epoch with this seed runs: it drifts 3x
# over the run, but the two epochs of a pair share their seed (their moment).
SPEED = {seed: 1.0 + 0.25 * seed for seed in range(40)}


def fake_epoch(calls, name, factor):
    def epoch(seed):
        calls.append((name, seed))
        return factor * SPEED[seed]

    return epoch


def test_each_peer_runs_next_to_the_reference_alternating_first(peers):
    pairing, *_ = peers
    calls, sleeps = [], []
    raw = pairing.run_pairs(
        fake_epoch(calls, "ref", 1.0),
        {"a": fake_epoch(calls, "a", 2.0), "b": fake_epoch(calls, "b", 0.5)},
        pairs=3, pause=0.25, sleep=sleeps.append, log=lambda line: None,
    )  # fmt: skip
    names = [name for name, _ in calls]
    assert names == ["ref", "a", "ref", "b",  # pair 1: the reference first
                     "a", "ref", "b", "ref",  # pair 2: the peer first
                     "ref", "a", "ref", "b"]  # fmt: skip
    # The two epochs of a pair train in the same order (seed), distinct per
    # pair and peer, and never the warm-up's.
    seeds = [seed for _, seed in calls]
    assert seeds[0::2] == seeds[1::2]
    assert len(set(seeds[0::2])) == 6 and 0 not in seeds
    assert sleeps == [0.25] * 12
    assert raw["a"]["seeds"] == [pairing.epoch_seed(p, 0, 2) for p in range(3)]
    assert raw["a"]["seeds"] == [seeds[0], seeds[4], seeds[8]]
    assert raw["a"]["first"] == ["reference", "peer", "reference"]
    assert raw["b"]["peer_s"] == [0.5 * SPEED[s] for s in raw["b"]["seeds"]]
    with pytest.raises(ValueError, match="^pairs: expected an int >= 1"):
        pairing.run_pairs(lambda s: 1.0, {}, pairs=0)


def test_summary_is_the_median_ratio_whatever_the_drift(peers):
    pairing, *_ = peers
    calls = []
    peer_epochs = {
        "slow": fake_epoch(calls, "slow", 3.0),
        "fast": fake_epoch(calls, "fast", 0.5),
    }
    raw = pairing.run_pairs(
        fake_epoch(calls, "ref", 1.0), peer_epochs,
        pairs=5, pause=0, sleep=lambda s: None, log=lambda line: None,
    )  # fmt: skip
    rows = pairing.summary_rows(raw, "ref")
    assert [r["framework"] for r in rows] == ["fast", "ref", "slow"]  # fastest first
    by_name = {r["framework"]: r for r in rows}
    for name, factor in (("slow", 3.0), ("fast", 0.5)):
        row = by_name[name]
        assert row["ratio_q1"] == pytest.approx(factor)
        assert row["ratio_median"] == pytest.approx(factor)
        assert row["ratio_q3"] == pytest.approx(factor)
        assert row["pairs"] == 5
    ref = by_name["ref"]
    assert ref["ratio_median"] is None and ref["pairs"] == 10
    every = raw["slow"]["reference_s"] + raw["fast"]["reference_s"]
    assert ref["median_s"] == pytest.approx(float(np.median(every)))
    assert pairing.summary_rows({}, "ref") == []


def test_a_worker_serves_one_epoch_per_request_in_the_seeds_order(peers):
    *_, workers = peers
    orders = []

    def setup(name, config, x, y):
        assert (name, config) == ("fastnn-numpy", "S")
        return lambda order: orders.append(order) or 0.125

    x, y = np.zeros((50, 4), np.float32), np.zeros(50, np.int64)
    replies = io.StringIO()
    requests = ['{"seed": 7}\n', '{"seed": 7}\n', '{"seed": 8}\n']
    workers.serve("fastnn-numpy", "S", x, y, requests, replies, setup=setup)
    lines = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert lines[0]["ready"] == "fastnn-numpy"
    assert lines[1:] == [{"seconds": 0.125}] * 3
    assert len(orders) == 4  # the warm-up, then one per request
    np.testing.assert_array_equal(orders[0], workers.epoch_order(0, 50))
    np.testing.assert_array_equal(orders[1], orders[2])
    assert sorted(orders[3]) == list(range(50))
    assert not np.array_equal(orders[1], orders[3])


def test_an_uninstalled_framework_is_reported_as_skipped(peers):
    *_, workers = peers

    def setup(name, config, x, y):
        raise ImportError("No module named 'torch'", name="torch")

    replies = io.StringIO()
    workers.serve("pytorch", "S", np.zeros((4, 2)), np.zeros(4), ["{}"], replies,
                  setup=setup)  # fmt: skip
    assert json.loads(replies.getvalue()) == {"skipped": "not installed (torch)"}


class FakeWorker:
    """In-process stand-in for ``workers.Worker``; pytorch is not installed."""

    spawned, closed = [], []

    def __init__(self, name, config):
        self.name = name
        FakeWorker.spawned.append((name, config))

    def start(self):
        if self.name == "pytorch":
            return {"skipped": "not installed (torch)"}
        return {"ready": self.name, "version": "1.0"}

    def epoch(self, seed):
        return {"fastnn-cython": 1.0, "sklearn": 2.0}[self.name] * SPEED[seed]

    def close(self):
        FakeWorker.closed.append(self.name)


def test_measure_skips_what_is_not_installed_and_closes_every_worker(peers):
    _, report, run_peers, _ = peers
    FakeWorker.spawned, FakeWorker.closed = [], []
    run = run_peers.measure(
        ["fastnn-cython", "pytorch", "sklearn"], ["S", "L64"], "fastnn-cython",
        pairs=2, pause=0, spawn=FakeWorker, log=lambda line: None,
    )  # fmt: skip
    # pytorch is asked once, then left out; every worker is closed.
    assert [n for n, _ in FakeWorker.spawned].count("pytorch") == 1
    assert sorted(FakeWorker.closed) == sorted(n for n, _ in FakeWorker.spawned)
    assert run["skipped"] == {"pytorch": "not installed (torch)"}
    for config in ("S", "L64"):
        result = run["configs"][config]
        assert list(result["raw"]) == ["sklearn"]
        (peer,) = [r for r in result["summary"] if r["framework"] == "sklearn"]
        assert peer["ratio_median"] == pytest.approx(2.0)
    run["environment"] = {"cpu_count": 2}
    text = report.markdown(run)
    assert "Machine: an unnamed CPU, 2 cores." in text
    run["environment"] = {
        "cpu_count": 2,
        "cpu": {"model": "AMD EPYC", "features": ["avx2", "fma"]},
        "blas": ["openblas 0.3.31 (SkylakeX)"],
    }
    assert report.machine(run["environment"]) == (
        "AMD EPYC (avx2, fma), 2 cores, openblas 0.3.31 (SkylakeX)"
    )
    text = report.markdown(run)
    assert "Machine: AMD EPYC (avx2, fma), 2 cores, openblas 0.3.31" in text
    assert "## S: 784-128-10, batch 64" in text
    assert "| sklearn 1.0 | " in text and "| 2.00 (2.00-2.00) | 2 |" in text
    assert "| 1 (the reference) | 2 epochs |" in text
    assert "Not measured: pytorch: not installed (torch)" in text
    assert json.loads(json.dumps(run)) == run  # what --json writes


def test_a_reference_that_cannot_run_stops_the_run(peers):
    _, _, run_peers, _ = peers
    FakeWorker.spawned, FakeWorker.closed = [], []
    with pytest.raises(SystemExit, match="^--reference: pytorch could not be"):
        run_peers.measure(["pytorch", "sklearn"], ["S"], "pytorch", pairs=1,
                          pause=0, spawn=FakeWorker, log=lambda line: None)  # fmt: skip
    assert sorted(FakeWorker.closed) == ["pytorch", "sklearn"]


@pytest.mark.slow
def test_a_tiny_paired_peer_run(peers, mnist, tmp_path):
    pytest.importorskip("sklearn")
    _, _, run_peers, _ = peers
    out = tmp_path / "peers.json"
    run_peers.main(
        ["--configs", "S", "--pairs", "2", "--pause", "0", "--samples", "640",
         "--reference", "fastnn-numpy", "--backends", "numpy", "--peers",
         "sklearn", "--out", str(tmp_path), "--json", str(out)]
    )  # fmt: skip
    run = json.loads(out.read_text())
    raw = run["configs"]["S"]["raw"]["sklearn"]
    assert len(raw["reference_s"]) == len(raw["peer_s"]) == 2
    assert all(t > 0 for t in raw["reference_s"] + raw["peer_s"])
    assert "| sklearn " in (tmp_path / "peers.md").read_text()
    assert (tmp_path / "peers.png").stat().st_size > 0
