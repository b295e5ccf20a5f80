"""``docs/peers.md`` and ``docs/peers.png`` from one paired peer run.

A run (what ``run_peers --json`` writes) is a dict: ``reference``, ``pairs``,
``pause``, ``samples`` (None: all), ``configs`` (per configuration: ``raw``,
the per-pair times of ``pairing.run_pairs``, and ``summary``, the rows of
``pairing.summary_rows``), ``skipped`` (framework: why), ``versions``
(framework: version) and ``environment`` (``fastnn.bench.environment_info``).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from fastnn import bench, io

__all__ = ["machine", "markdown", "plot", "write_report"]

TITLE = "# fastnn against its peers: one MNIST epoch, float32, paired"


def _method(run: dict) -> str:
    ref = run["reference"]
    data = "the real MNIST in memory"
    if run.get("samples"):
        data += f" (its first {run['samples']} training images)"
    return (
        "Every framework trains the same network (ReLU hidden layers, softmax "
        "cross-entropy, SGD with learning rate 0.05, momentum 0.9 and L2 1e-4, "
        f"float32) on {data}, in its own persistent process, "
        "set up once and warmed up by one epoch. Then, for each of "
        f"{run['pairs']} pairs and each peer, {ref} (the reference) and the "
        "peer train one epoch each, adjacent and in the same batch order, "
        "the one going first alternating from pair to pair, with a "
        f"{run['pause']:g} s pause after every epoch. The machine's speed "
        "drifts by up to 2x within minutes, but the two epochs of a pair meet "
        f"the same machine: the ratio is the peer's epoch time over {ref}'s in "
        "the same pair (above 1: slower), given as the median over the pairs "
        "with its quartiles; the median epoch is over the framework's own "
        "epochs (the reference's over all its pairs)."
    )


def _row(row: dict, versions: dict) -> str:
    name = row["framework"]
    label = f"{name} {versions[name]}" if versions.get(name) else name
    if row["ratio_median"] is None:
        ratio, pairs = "1 (the reference)", f"{row['pairs']} epochs"
    else:
        ratio = (
            f"{row['ratio_median']:.2f} ({row['ratio_q1']:.2f}-{row['ratio_q3']:.2f})"
        )
        pairs = str(row["pairs"])
    return f"| {label} | {row['median_s']:.3f} | {ratio} | {pairs} |"


def machine(environment: dict) -> str:
    """The CPU, its cores and BLAS, in a few words (from the run's
    environment; what it lacks is left out)."""
    cpu = environment.get("cpu") or {}
    words = [str(cpu.get("model") or "an unnamed CPU")]
    if cpu.get("features"):
        words[0] += f" ({', '.join(cpu['features'])})"
    if environment.get("cpu_count"):
        words.append(f"{environment['cpu_count']} cores")
    words += [str(b) for b in environment.get("blas") or []]
    return ", ".join(words)


def markdown(run: dict) -> str:
    """The report's text."""
    ref, versions = run["reference"], run.get("versions", {})
    lines = [TITLE, "", textwrap.fill(_method(run), 80, break_on_hyphens=False), ""]
    lines += [
        textwrap.fill(f"Machine: {machine(run.get('environment') or {})}.", 80),
        "",
    ]
    for config, result in run["configs"].items():
        cfg = bench.CONFIGS[config]
        lines += [
            f"## {config}: {'-'.join(map(str, cfg.sizes))}, batch {cfg.batch_size}",
            "",
            f"| framework | median epoch (s) | time / {ref}: median (quartiles) "
            "| pairs |",
            "| --- | ---: | --- | ---: |",
        ]
        lines += [_row(row, versions) for row in result["summary"]]
        lines.append("")
    if run.get("skipped"):
        lines += [
            "Not measured: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(run["skipped"].items())),
            "",
        ]
    lines += [
        "Environment (the driver's process):",
        "",
        "```",
        json.dumps(run["environment"], indent=1, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_report(run: dict, out: Path) -> None:
    """``out/peers.md`` and ``out/peers.png``, each written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(run)
    io.atomic_write(out / "peers.md", lambda f: f.write(text.encode()))
    medians = {
        config: {row["framework"]: row["median_s"] for row in result["summary"]}
        for config, result in run["configs"].items()
    }
    plot(medians, out / "peers.png", machine(run.get("environment") or {}))
    print(f"wrote {out / 'peers.md'} and {out / 'peers.png'}")


def plot(medians: dict[str, dict[str, float]], path, machine: str = "") -> None:
    """Bars of each framework's median epoch (``medians[config][name]``,
    seconds), one panel per configuration; fastnn in green; ``machine`` under
    the title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.3), layout="constrained")
    axes = fig.subplots(1, len(medians), squeeze=False)[0]
    for ax, (config, r) in zip(axes, medians.items(), strict=True):
        names = sorted(r, key=r.get)
        ax.barh(
            names,
            [r[n] for n in names],
            color=[
                "tab:green" if n.startswith("fastnn") else "tab:gray" for n in names
            ],
        )
        ax.set_title(config)
        ax.set_xlabel("seconds per epoch")
    title = (
        "One MNIST epoch, float32: median seconds, lower is better (fastnn in green)"
    )
    fig.suptitle(title + (f"\n{machine}" if machine else ""), fontsize=10)
    io.atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
