"""Learning curves: train loss (smoothed) and accuracy against round and against cumulative bytes
(round 0 at zero bytes), and validation accuracy over seeds (mean and band) for the reproduce
tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    MaxNLocator,
    NullLocator,
    PercentFormatter,
)

from hiso.tracking.curves import ema, ema_span, is_number, mean_curve
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
    "cumulative_bytes": "cumulative bytes on the wire (all clients)",
    "train_loss": "train loss",
    "accuracy": "accuracy",
}
# the series an accuracy panel draws: (metric key, marker, line style); the test split is scored
# at a few rounds only, so it gets markers at those rounds and no line between them
_ACCURACY_SERIES = (("val_accuracy", "o", "-"), ("test_accuracy", "s", "none"))
# at most this many labelled ticks on a bytes axis
_BYTE_TICKS = 7


def _points(history: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    """The rounds with a finite x and y, round 0 included (on the bytes axis at zero bytes)."""
    pairs = [(r[x], r[y]) for r in history if is_number(r.get(x)) and is_number(r.get(y))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def round_axis(ax: Axes) -> None:
    """Integer round ticks (a short run gets no fractional rounds)."""
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def bytes_axis(ax: Axes, linthresh: float, top: float) -> None:
    """Cumulative bytes on a symlog axis: linear up to `linthresh` (the smallest positive count
    drawn, a first round's bytes), logarithmic above, so round 0 (no bytes yet) sits at x = 0.
    Every tick is labelled: 0, then powers of 2 from 1.5 x linthresh (closer ones would print
    over the 0) up to `top`, every other one while there would be _BYTE_TICKS or more."""
    ax.set_xscale("symlog", base=4, linthresh=linthresh, linscale=0.5)
    ax.set_xlabel(_LABELS["cumulative_bytes"])
    powers = [2.0**k for k in range(128) if 1.5 * linthresh <= 2.0**k <= max(top, 1.0) * 1.05]
    while len(powers) >= _BYTE_TICKS:
        powers = powers[::2]
    ax.xaxis.set_major_locator(FixedLocator([0.0, *powers]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: human_bytes(value)))
    ax.xaxis.set_minor_locator(NullLocator())
    left, right = ax.get_xlim()
    ax.set_xlim(min(left, -0.05 * linthresh), right)  # the 0 tick inside the panel


def _linthresh(counts: Iterable[object]) -> float:
    return min((float(c) for c in counts if is_number(c) and c > 0), default=1.0)  # type: ignore[operator]


def _top(counts: Iterable[object]) -> float:
    return max((float(c) for c in counts if is_number(c)), default=1.0)  # type: ignore[arg-type]


def _key(colour: str) -> list[Line2D]:
    """Legend entries that say what each kind of line and marker is."""
    return [
        Line2D([], [], color=colour, linewidth=1.5, label="train loss (EMA)"),
        Line2D([], [], color=colour, linewidth=0.8, alpha=0.25, label="train loss per round"),
        Line2D([], [], color=colour, marker="o", markersize=4, label="validation accuracy"),
        Line2D(
            [],
            [],
            color=colour,
            marker="s",
            linestyle="none",
            markersize=5,
            label="test accuracy (rounds scored)",
        ),
    ]


def _draw(runs: dict[str, list[dict]], out_png: Path, title: str, footer: str | None) -> Figure:
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    counts = [r.get("cumulative_bytes") for h in runs.values() for r in h]
    linthresh, top = _linthresh(counts), _top(counts)
    for ax, (x, y) in zip(axes.flat, _PANELS, strict=True):
        for colour, (label, history) in enumerate(runs.items()):
            if y == "train_loss":
                xs, ys = _points(history, x, y)
                ax.plot(xs, ys, color=f"C{colour}", linewidth=0.8, alpha=0.25)
                smooth = ema(ys, ema_span(len(ys)))
                ax.plot(xs, smooth, color=f"C{colour}", linewidth=1.5, label=label)
                continue
            for key, marker, style in _ACCURACY_SERIES:
                xs, ys = _points(history, x, key)
                if xs:
                    ax.plot(
                        xs,
                        ys,
                        marker=marker,
                        linestyle=style,
                        markersize=3 if style != "none" else 5,
                        linewidth=1.2,
                        color=f"C{colour}",
                        label=label if key == _ACCURACY_SERIES[0][0] else None,
                    )
        if x == "round":
            round_axis(ax)
        else:
            bytes_axis(ax, linthresh, top)
        ax.set_ylabel(_LABELS[y])
        ax.grid(alpha=0.3)
        if y == "accuracy":
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    for row in axes:  # loss and accuracy over the same x range
        lows, highs = zip(*(ax.get_xlim() for ax in row), strict=True)
        for ax in row:
            ax.set_xlim(min(lows), max(highs))
    handles: list = _key("C0" if len(runs) == 1 else "0.4")
    if len(runs) > 1:
        runs_handles, _ = axes[0, 0].get_legend_handles_labels()
        handles = [*runs_handles, *handles]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    fig.suptitle(title if not footer else f"{title}\n{footer}")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return fig


def plot_run(history: list[dict], out_png: Path, title: str, footer: str | None = None) -> Figure:
    """Write a 2x2 PNG of one run's train loss and accuracy against round and bytes; `footer`
    (e.g. `hyperparameter_line(config)`) goes under the title. Returns the figure."""
    return _draw({title: history}, out_png, title, footer)


def plot_runs(
    runs: dict[str, list[dict]], out_png: Path, title: str, footer: str | None = None
) -> Figure:
    """Write the 2x2 curves of several runs on shared axes, one legend entry per dict key, the
    legend below the panels. Returns the figure."""
    return _draw(runs, out_png, title, footer)


def _band_axes(ax: Axes, x: str, linthresh: float, top: float) -> None:
    ax.set_ylabel("validation accuracy")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.grid(alpha=0.3)
    if x == "round":
        round_axis(ax)
    else:
        bytes_axis(ax, linthresh, top)


def plot_bands(
    cells: dict[str, dict[str, Sequence[list[dict]]]], out_png: Path, title: str
) -> Figure:
    """Validation accuracy against rounds and against measured cumulative bytes, one row of two
    panels per cell (name -> method label -> the method's runs): the mean over runs as a line,
    their min-max as a band, one colour per method across cells, one legend below the panels.
    Returns the figure."""
    labels = list(dict.fromkeys(label for methods in cells.values() for label in methods))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    fig = Figure(figsize=(11, 3.6 * max(len(cells), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(len(cells), 1), 2, squeeze=False)
    curves = {
        (cell, label): mean_curve(runs)
        for cell, methods in cells.items()
        for label, runs in methods.items()
    }
    measured = [p.bytes.get("measured") for curve in curves.values() for p in curve]
    linthresh, top = _linthresh(measured), _top(measured)
    for row, (cell, methods) in zip(axes, cells.items(), strict=False):
        for label in methods:
            curve = curves[(cell, label)]
            for ax, x in zip(row, ("round", "bytes"), strict=True):
                points = (
                    curve if x == "round" else [p for p in curve if p.bytes["measured"] is not None]
                )
                xs = [p.round if x == "round" else p.bytes["measured"] for p in points]
                ax.plot(xs, [p.mean for p in points], color=colours[label], label=label)
                ax.fill_between(
                    xs,
                    [p.low for p in points],
                    [p.high for p in points],
                    color=colours[label],
                    alpha=0.2,
                    linewidth=0,
                )
        for ax, x in zip(row, ("round", "bytes"), strict=True):
            _band_axes(ax, x, linthresh, top)
            if cell:
                ax.set_title(cell, fontsize="medium")
    handles = {
        label: handle
        for ax in axes[:, 0]
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=3)
    fig.suptitle(title)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return fig
