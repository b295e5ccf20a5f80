"""The paired schedule and its bookkeeping: every peer's epoch next to one of
the reference's, on the same machine state and in the same batch order.

For pair ``p`` (``benchmarks.paired.pair_order``: reference first in even
pairs, the peer first in odd ones) and each peer ``c`` in turn, the reference
and ``c`` each train one epoch in the order of one seed, adjacent, with a
pause after each epoch. The ratio of a pair is ``c``'s time over the
reference's; ``benchmarks.paired.summarize`` gives the median ratio over the
pairs and its quartiles. The contenders are plain callables,
``epoch(seed) -> seconds``, so the schedule is tested without processes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from benchmarks.paired import pair_order, summarize

__all__ = ["epoch_seed", "run_pairs", "summary_rows"]

EpochBySeed = Callable[[int], float]


def epoch_seed(pair: int, peer: int, n_peers: int) -> int:
    """The order seed of ``peer``'s (an index) epochs in ``pair``: one seed per
    pair and peer, all above the warm-up's 0."""
    return 1 + pair * n_peers + peer


def run_pairs(
    reference: EpochBySeed,
    peers: dict[str, EpochBySeed],
    pairs: int,
    pause: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, list]]:
    """``pairs`` paired epochs of each of ``peers`` against ``reference``.

    Returns, per peer, the raw pairs: ``seeds``, ``reference_s`` and
    ``peer_s`` (seconds, index by index the same pair), and ``first`` (which
    of the two ran first).
    """
    if pairs < 1:
        raise ValueError(f"pairs: expected an int >= 1; received {pairs!r}")
    raw = {
        name: {"seeds": [], "reference_s": [], "peer_s": [], "first": []}
        for name in peers
    }
    for p, order in enumerate(pair_order(pairs)):
        for j, (name, peer) in enumerate(peers.items()):
            seed = epoch_seed(p, j, len(peers))
            contenders = (reference, peer)
            seconds = [0.0, 0.0]
            for i in order:
                seconds[i] = contenders[i](seed)
                sleep(pause)
            row = raw[name]
            row["seeds"].append(seed)
            row["reference_s"].append(seconds[0])
            row["peer_s"].append(seconds[1])
            row["first"].append("reference" if order[0] == 0 else "peer")
            log(
                f"  pair {p + 1}/{pairs} {name:14s} {seconds[1]:8.3f} s, "
                f"reference {seconds[0]:8.3f} s: ratio {seconds[1] / seconds[0]:.3f}"
            )
    return raw


def summary_rows(raw: dict[str, dict[str, list]], reference: str) -> list[dict]:
    """One row per framework, fastest median epoch first: ``framework``,
    ``median_s``, ``pairs`` and, for a peer, ``ratio_median``, ``ratio_q1``,
    ``ratio_q3`` (its time over the reference's). The reference's row has
    the median of all its epochs and no ratio."""
    every = [t for row in raw.values() for t in row["reference_s"]]
    if not every:  # no peer measured
        return []
    rows = [{"framework": reference, "median_s": statistics.median(every),
             "pairs": len(every), "ratio_median": None,
             "ratio_q1": None, "ratio_q3": None}]  # fmt: skip
    for name, row in raw.items():
        s = summarize(row["reference_s"], row["peer_s"])
        rows.append(
            {
                "framework": name,
                "median_s": s["second_median_s"],
                "pairs": s["pairs"],
                "ratio_median": s["ratio_median"],
                "ratio_q1": s["ratio_q1"],
                "ratio_q3": s["ratio_q3"],
            }
        )
    return sorted(rows, key=lambda r: r["median_s"])
