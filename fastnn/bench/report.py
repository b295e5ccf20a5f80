"""Benchmark results as plain-text tables and as a bar chart of samples/s.

matplotlib is imported only inside :func:`plot_bars`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fastnn.bench.rows import BenchRow, grouped, order_key

__all__ = ["format_table", "plot_bars", "print_table"]


def format_table(rows: Iterable[BenchRow], cut_by: str | None = None) -> str:
    """A plain-text table per group: backend, median s, time / numpy, samples/s.

    A group measured on part of the training set gets a footnote saying so;
    ``cut_by`` names what cut it there (``"--samples"``,
    ``"FASTNN_BENCH_SAMPLES"``), or None to name nothing.
    """
    lines = []
    for group, members in grouped(rows).items():
        lines.append(f"== {group}")
        lines.append(
            f"  {'backend':<18} {'median s':>11} {'time/numpy':>11} {'samples/s':>12}"
        )
        for r in members:
            ratio = f"{r.ratio_to_numpy:.3f}" if r.ratio_to_numpy is not None else "-"
            sps = (
                f"{r.samples_per_second:,.0f}"
                if r.samples_per_second is not None
                else "-"
            )
            lines.append(f"  {r.backend:<18} {r.median_s:>11.4g} {ratio:>11} {sps:>12}")
        if any(r.smoke for r in members):
            counts = [r.n_samples for r in members if r.smoke and r.n_samples]
            cut = f"{min(counts)} samples, " if counts else ""
            by = f"{cut_by}: " if cut_by else ""
            lines.append(f"  ({by}{cut}not a real measurement)")
    return "\n".join(lines)


def print_table(rows: Iterable[BenchRow], file=None, cut_by: str | None = None) -> None:
    """Print :func:`format_table` (to stdout by default)."""
    print(format_table(rows, cut_by=cut_by), file=file)


def plot_bars(rows: Iterable[BenchRow], path: str | os.PathLike) -> Path:
    """Bar charts of samples/s, one panel per configuration; written atomically.

    Each panel has its own y axis (S is about ten times faster than L64, so a
    shared axis would flatten L64's bars) and one bar per backend, labelled with
    its speed-up over numpy when numpy was measured too.
    """
    from fastnn import io, plots

    plots.require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    path = Path(os.fspath(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"path: the folder {str(path.parent)!r} does not exist; create it first"
        )
    groups = grouped(r for r in rows if r.samples_per_second is not None)
    if not groups:
        raise ValueError(
            "rows: expected at least one result with samples_per_second; received none"
        )
    backends = sorted({r.backend for m in groups.values() for r in m}, key=order_key)
    colors = {b: f"C{i}" for i, b in enumerate(backends)}
    most = max(len(m) for m in groups.values())
    # Long backend names side by side would overlap: slant them.
    slant = most * max(len(b) for b in backends) > 24
    panel = max(2.6, 0.6 * most + 1.2)
    # At least 4.6 inches: the title's longest line must fit.
    width = max(4.6, panel * len(groups))
    fig = Figure(figsize=(width, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (group, members) in zip(axes, groups.items(), strict=True):
        names = [r.backend for r in members]
        bars = ax.bar(
            range(len(members)),
            [r.samples_per_second for r in members],
            0.7,
            color=[colors[b] for b in names],
        )
        ax.bar_label(
            bars,
            labels=[
                f"{1 / r.ratio_to_numpy:.1f}x" if r.ratio_to_numpy else ""
                for r in members
            ],
            fontsize=8,
            padding=2,
        )
        ax.margins(y=0.12)  # room above the tallest bar for its label
        pad = max(0.0, (3 - len(members)) / 2)  # one bar: not a full-width block
        ax.set_xlim(-0.6 - pad, len(members) - 0.4 + pad)
        ax.set_xticks(
            range(len(members)),
            names,
            rotation=30 if slant else 0,
            ha="right" if slant else "center",
            rotation_mode="anchor",
        )
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_ylabel("training samples / s")
        ax.set_title(group, fontsize=10)
    title = "fastnn: one MNIST epoch per backend (higher is better)"
    if any(r.ratio_to_numpy for m in groups.values() for r in m):
        title += "\nspeed-up over numpy above the bars"
    smoke = [r.n_samples for m in groups.values() for r in m if r.smoke]
    if smoke:
        cut = f"{min(n for n in smoke if n)} samples: " if any(smoke) else ""
        title += f"\n({cut}not a real measurement)"
    fig.suptitle(title, fontsize=10)
    io.atomic_write(path, lambda f: fig.savefig(f, format="png"))
    return path
