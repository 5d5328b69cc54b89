"""Learning curves: train loss and test accuracy against round and against cumulative bytes."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from hiso.tracking.records import human_bytes

# (x key, y key) of the 2x2 panels, row by row
_PANELS = (
    ("round", "train_loss"),
    ("round", "accuracy"),
    ("cumulative_bytes", "train_loss"),
    ("cumulative_bytes", "accuracy"),
)
_LABELS = {
    "round": "round",
    "cumulative_bytes": "cumulative bytes (uplink + downlink)",
    "train_loss": "train loss",
    "accuracy": "accuracy (validation: line, test: squares)",
}
# the series an accuracy panel draws: (metric key, marker, line style)
_ACCURACY_SERIES = (("val_accuracy", "o", "-"), ("test_accuracy", "s", ":"))


def _points(history: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    """Rounds with a numeric x and y; on the log bytes axis only x > 0 (round 0 has zero bytes)."""
    pairs = [
        (r[x], r[y])
        for r in history
        if isinstance(r.get(x), int | float)
        and isinstance(r.get(y), int | float)
        and (x == "round" or r[x] > 0)
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _style(ax: Axes, x: str, y: str) -> None:
    ax.set_xlabel(_LABELS[x])
    ax.set_ylabel(_LABELS[y])
    ax.grid(alpha=0.3)
    if x == "cumulative_bytes":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: human_bytes(value)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if y == "accuracy":
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))


def _draw(runs: dict[str, list[dict]], out_png: Path, title: str, legend: bool) -> None:
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for ax, (x, y) in zip(axes.flat, _PANELS, strict=True):
        for colour, (label, history) in enumerate(runs.items()):
            series = _ACCURACY_SERIES if y == "accuracy" else ((y, None, "-"),)
            for key, marker, style in series:
                xs, ys = _points(history, x, key)
                if xs:
                    ax.plot(
                        xs,
                        ys,
                        marker=marker,
                        linestyle=style,
                        markersize=3,
                        linewidth=1.2,
                        color=f"C{colour}",
                        label=label if key == series[0][0] or y != "accuracy" else None,
                    )
        _style(ax, x, y)
    if legend:
        axes[0, 1].legend(fontsize="small")
    fig.suptitle(title)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)


def plot_run(history: list[dict], out_png: Path, title: str) -> None:
    """Write a 2x2 PNG of one run's train loss and test accuracy against round and bytes."""
    _draw({title: history}, out_png, title, legend=False)


def plot_runs(runs: dict[str, list[dict]], out_png: Path, title: str) -> None:
    """Write the 2x2 curves of several runs on shared axes, one legend entry per dict key."""
    _draw(runs, out_png, title, legend=True)
