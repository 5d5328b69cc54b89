"""How HiSo's curvature H evolved in a table's runs, read off the summaries logged with each
evaluation (hiso/optim/curvature.py): the median of H, its spread across parameters (q95/q05),
the fraction at the floor, and the effective learning rate lr * mean(1/H)
(hiso.optim.curvature.effective_lr): HiSo's scalars shrink by H^-1/2 as its directions do, so its
expected step is lr H^-1 grad f and DeComFL at lr * mean(1/H) takes the same mean step
(tests/test_effective_rate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hiso.optim.curvature import effective_lr
from hiso.reproduce.aggregate import RunRecord

KEYS = (
    "curvature_q05",
    "curvature_q50",
    "curvature_q95",
    "curvature_inverse_mean",
    "curvature_floor_fraction",
)


def trajectory(record: RunRecord) -> list[dict[str, float]]:
    """The run's curvature summaries by round, with the spread and the effective rate."""
    points = []
    for row in record.history:
        if not all(isinstance(row.get(k), int | float) for k in KEYS):
            continue
        points.append(
            {
                "round": row["round"],
                **{k: float(row[k]) for k in KEYS},
                "spread": row["curvature_q95"] / row["curvature_q05"],
                "effective_lr": effective_lr(record.lr, row["curvature_inverse_mean"]),
            }
        )
    return points


def logged(records: list[RunRecord]) -> list[tuple[RunRecord, list[dict[str, float]]]]:
    """The runs that logged curvature, each with its trajectory."""
    return [(r, points) for r in records if (points := trajectory(r))]


# What H can hold, whatever the run: the rule's arithmetic (../shared/SPEC.md section 3).
READING = """
What H can hold. A round's update is dx = (1/P) sum_p g_p H^-1/2 u_p, and every coordinate
shares the same P scalars g_p (for a forward difference, g_p ~ grad f . H^-1/2 u_p). Over the
directions, E[dx_i^2] = ((s + 2 a_i) / P + (1 - 1/P) a_i) / H_i with a_i = (d_i f)^2 / H_i and
s = sum_j a_j, the sum over all d coordinates. Coordinate i's own term a_i is on average 1/d of
s, so H_i <- beta H_i + (1 - beta) dx_i^2 tracks the common scale s / (P H_i), the same for every
parameter, plus the noise of u_i^2: H settles near sqrt(s / P) everywhere, that is near
(|grad f|^2 / P)^(1/3), with a spread over parameters set by beta and by how much the scalars
vary from round to round, not by the loss's curvature (tests/test_zo.py shows it on a quadratic
whose Hessian spans four decades: H's median is the same, within 3%, on its flattest and its
steepest quarter). The scalars shrink by H^-1/2 as the directions do, so the expected step is
lr H^-1 grad f: with H held at h, HiSo(lr, mu) is DeComFL(lr / h, mu / sqrt(h)). HiSo is then
DeComFL at the effective rate lr * mean(1/H) above (which adapts to the scalars' size, and is not
DeComFL's rate unless mean(1/H) = 1), with per-coordinate noise on top.
"""


def section(
    records: list[RunRecord],
    reference_lr: float | None,
    reference: str,
    by_tensor: Path | None = None,
) -> str:
    """A markdown table of every HiSo run's curvature at its last evaluation, what H can hold,
    and `by_tensor` (scripts/curvature_tensors.py's table) when that file exists; empty when no
    run logged curvature."""
    runs = logged(records)
    if not runs:
        return ""
    lines = [
        "## HiSo's curvature H\n",
        "Per run at its last evaluation: the median of H over parameters (sampled), the spread "
        "q95/q05, the fraction of entries at the floor, mean(1/H) (HiSo's mean step relative "
        "to DeComFL's at the same rate) and the effective rate lr * mean(1/H)"
        + (f"; {reference}'s chosen rate is {reference_lr!r}." if reference_lr else ".")
        + "\n",
        "| method | lr | seed | round | median H | q95/q05 | at floor | mean(1/H) | effective lr |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for record, points in sorted(runs, key=lambda rt: (rt[0].method, rt[0].lr, rt[0].seed)):
        last = points[-1]
        lines.append(
            f"| {record.method} | {record.lr!r} | {record.seed} | {last['round']} "
            f"| {last['curvature_q50']:.3g} "
            f"| {last['spread']:.2f} | {last['curvature_floor_fraction']:.3f} "
            f"| {last['curvature_inverse_mean']:.3g} | {last['effective_lr']:.3g} |"
        )
    lines.append(READING)
    if by_tensor is not None and by_tensor.is_file():
        lines += [
            "By parameter tensor, from a checkpoint (`python scripts/curvature_tensors.py "
            f"CHECKPOINT --out {by_tensor}`):\n",
            by_tensor.read_text(),
        ]
    return "\n".join(lines) + "\n"


def plot(records: list[RunRecord], reference_lr: float | None, reference: str, path: Path) -> bool:
    """H's median and q05-q95 band, and the effective rate, against rounds for every HiSo run;
    False (nothing written) when no run logged curvature."""
    runs = logged(records)
    if not runs:
        return False
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    kinds = sorted({(r.method, r.lr) for r, _ in runs})
    for record, points in runs:
        colour = f"C{kinds.index((record.method, record.lr)) % 10}"
        rounds = [p["round"] for p in points]
        label = f"{record.method}, lr {record.lr:g}, seed {record.seed}"
        left.plot(rounds, [p["curvature_q50"] for p in points], color=colour, label=label)
        left.fill_between(
            rounds,
            [p["curvature_q05"] for p in points],
            [p["curvature_q95"] for p in points],
            color=colour,
            alpha=0.15,
        )
        right.plot(rounds, [p["effective_lr"] for p in points], color=colour, label=label)
    if reference_lr:
        right.axhline(reference_lr, color="black", linestyle="--", label=f"{reference} lr")
    left.set(yscale="log", xlabel="round", ylabel="H: median, q05-q95 band")
    right.set(yscale="log", xlabel="round", ylabel="effective lr: lr * mean(1/H)")
    left.set_title("HiSo's curvature over parameters")
    right.set_title("effective learning rate")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.savefig(path, dpi=110)
    return True


def summary(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every HiSo run's curvature trajectory, for the table's JSON file."""
    return [
        {"method": r.method, "lr": r.lr, "seed": r.seed, "points": points}
        for r, points in logged(records)
    ]
