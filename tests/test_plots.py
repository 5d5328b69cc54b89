"""The figures and the sweep table on synthetic histories and configs: smoothing, round 0 on the
bytes axes, integer round ticks, the hyperparameter footer, labels from what differs, the legend
outside the panels, byte ticks that all carry a label, test accuracy as markers, and the sweep
table (hiso/sweep_summary.py) and plot (hiso/sweep_plot.py) on fake run directories."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hiso import sweep_plot, sweep_summary
from hiso.tracking.curves import ema
from hiso.tracking.labels import flatten, hyperparameter_line, run_labels, varying_keys
from hiso.tracking.plots import plot_bands, plot_run, plot_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(rounds: int = 3, loss: tuple[float, ...] = (4.0, 2.0, 3.0)) -> list[dict]:
    """Round 0 (no bytes yet, evaluated, no train loss) then `rounds` rounds of 100 bytes each,
    evaluated at the last; train loss from `loss`."""
    rows: list[dict] = [{"round": 0, "cumulative_bytes": 0, "val_accuracy": 0.5}]
    for r in range(1, rounds + 1):
        rows.append({"round": r, "cumulative_bytes": 100 * r, "train_loss": loss[r - 1]})
    rows[-1] |= {"val_accuracy": 0.75, "test_accuracy": 0.7}
    return rows


def config(**changes: object) -> dict:
    """A composed config as the CLI saves it, with dotted `changes` (a__b for a.b)."""
    tree: dict = {
        "algo": {"name": "hiso", "num_perturbations": 5, "beta": 0.95},
        "optim": {"lr": 1e-6, "batch_size": 8},
        "federation": {"num_clients": 6, "clients_per_round": 2, "local_steps": 1},
        "logger": {"wandb": {"mode": "offline"}},
        "seed": 0,
    }
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = tree
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return tree


def test_ema_matches_a_hand_computation() -> None:
    # span 3: weight 2 / (3 + 1) = 0.5 on the newest value, started at the first value
    assert ema([1.0, 3.0, 2.0, 6.0], span=3) == [1.0, 2.0, 2.0, 4.0]
    assert ema([5.0, 1.0, 7.0], span=1) == [5.0, 1.0, 7.0]
    assert ema([], span=4) == []


def test_run_figure_has_round_zero_on_bytes_axes_integer_ticks_and_footer(
    tmp_path: Path,
) -> None:
    out = tmp_path / "curves.png"
    fig = plot_run(history(), out, "a run", "hiso  lr=1e-06  P=5")
    assert out.read_bytes()[:8] == PNG_MAGIC
    loss_rounds, acc_rounds, loss_bytes, acc_bytes = fig.axes
    for ax in (loss_bytes, acc_bytes):
        assert ax.get_xscale() == "symlog"
    assert list(acc_bytes.get_lines()[0].get_xdata()) == [0, 300]  # round 0 at zero bytes
    assert list(acc_bytes.get_lines()[0].get_ydata()) == [0.5, 0.75]
    test = acc_rounds.get_lines()[1]  # scored at round 3 only: a marker, no line
    assert list(test.get_xdata()) == [3] and test.get_linestyle() == "None"
    fig.canvas.draw()
    for ax in (loss_bytes, acc_bytes):  # every tick inside the panel has a label, 0 B first
        lo, hi = ax.get_xlim()
        shown = [t for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
        assert shown[0].get_text() == "0 B" and all(t.get_text() for t in shown), shown
    (legend,) = fig.legends
    assert "test accuracy (rounds scored)" in [t.get_text() for t in legend.get_texts()]
    raw, smooth = loss_rounds.get_lines()
    assert list(raw.get_ydata()) == [4.0, 2.0, 3.0]
    assert raw.get_alpha() is not None and raw.get_alpha() < 0.5  # faint behind
    assert list(smooth.get_ydata()) == ema([4.0, 2.0, 3.0], span=1)  # 3 points: span 1
    for ax in (loss_rounds, acc_rounds):
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert fig.get_suptitle() == "a run\nhiso  lr=1e-06  P=5"


def test_long_loss_curves_are_smoothed(tmp_path: Path) -> None:
    loss = tuple(float(r % 2) for r in range(40))  # alternating 0, 1: a noisy band
    fig = plot_run(history(40, loss), tmp_path / "c.png", "t")
    smooth = list(fig.axes[0].get_lines()[1].get_ydata())
    assert smooth == pytest.approx(ema(list(loss), span=4))
    assert max(smooth[10:]) - min(smooth[10:]) < 0.5  # the raw band is 1 wide


def test_several_runs_share_one_legend_outside_the_panels(tmp_path: Path) -> None:
    fig = plot_runs({"hiso": history(), "decomfl": history()}, tmp_path / "c.png", "t")
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["hiso", "decomfl"] and "validation accuracy" in texts
    fig.canvas.draw()
    box = legend.get_window_extent()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:  # the legend covers no panel, its tick labels or axis labels
        assert not box.overlaps(ax.get_tightbbox(renderer))


def test_bands_have_one_legend_below_the_panels_and_integer_rounds(tmp_path: Path) -> None:
    cells = {"a": {"HiSo": [history()]}, "b": {"HiSo": [history()], "DeComFL": [history()]}}
    fig = plot_bands(cells, tmp_path / "bands.png", "t")
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["HiSo", "DeComFL"]
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert all(float(t).is_integer() for t in ax.get_xticks() if lo <= t <= hi)


def test_labels_name_only_what_differs_and_the_algorithm() -> None:
    configs = [
        flatten(config(optim__lr=1e-6, logger__wandb__mode="offline")),
        flatten(config(optim__lr=1e-5, logger__wandb__mode="disabled")),
        flatten(config(optim__lr=1e-5, seed=1)),
    ]
    assert varying_keys(configs) == ["optim.lr", "seed"]  # logger: bookkeeping
    assert run_labels(configs) == [
        "hiso optim.lr=1e-06 seed=0",
        "hiso optim.lr=1e-05 seed=0",
        "hiso optim.lr=1e-05 seed=1",
    ]
    # another algorithm: its name, and of its group's keys only those set on the command line
    configs = [
        flatten(config()),
        flatten(config(algo__name="decomfl", algo__beta=0.0, algo__num_perturbations=10)),
    ]
    assert run_labels(configs) == ["hiso", "decomfl"]
    assert run_labels(configs, {"algo.num_perturbations"}) == [
        "hiso algo.num_perturbations=5",
        "decomfl algo.num_perturbations=10",
    ]


def test_hyperparameter_line_leaves_out_what_the_legend_names() -> None:
    cfg = config()
    assert hyperparameter_line(cfg) == "hiso  lr=1e-06  P=5  K=1  batch=8  clients=2/6  seed=0"
    assert hyperparameter_line(cfg, ["optim.lr", "seed"]) == "hiso  P=5  K=1  batch=8  clients=2/6"


def write_run(run_dir: Path, cfg: dict, overrides: list[str], summary: dict | None) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(cfg), run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in history()) + "\n")
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))


def test_plot_script_labels_runs_by_their_differences(tmp_path: Path, capsys) -> None:
    plot = sweep_plot
    dirs = [tmp_path / "0", tmp_path / "1", tmp_path / "bare"]
    write_run(dirs[0], config(), ["optim.lr=1e-6", "seed=0"], None)
    write_run(dirs[1], config(optim__lr=1e-5), ["optim.lr=1e-5", "seed=0"], None)
    dirs[2].mkdir()
    (dirs[2] / "metrics.jsonl").write_text(json.dumps(history()[0]) + "\n")
    labels, footer = plot.labels_and_footer(dirs[:2])
    assert labels == ["hiso optim.lr=1e-06", "hiso optim.lr=1e-05"]
    assert footer == "hiso  P=5  K=1  batch=8  clients=2/6  seed=0"
    assert plot.labels_and_footer(dirs)[0][2] == "bare"  # no saved config: its directory
    out = tmp_path / "cmp.png"
    plot.main([str(d) for d in dirs[:2]] + ["-o", str(out)])
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_bytes()[:8] == PNG_MAGIC


def summary(status: str, best: float, seconds: float) -> dict:
    return {
        "status": status,
        "round_reached": 3,
        "final_val_accuracy": 0.75,
        "best_val_accuracy": best,
        "best_round": 3,
        "test_accuracy_at_best": 0.7,
        "final_test_accuracy": 0.7,
        "total_bytes": 300,
        "paper_bytes_hiso": 120,
        "paper_bytes_decomfl": 180,
        "seconds_per_round": seconds,
    }


def test_summarize_tables_a_sweep_sorted_by_what_varied(tmp_path: Path, capsys) -> None:
    root = tmp_path / "multirun"
    write_run(root / "0", config(optim__lr=1e-5), ["optim.lr=1e-5"], summary("finished", 0.8, 2.0))
    write_run(root / "1", config(optim__lr=1e-6), ["optim.lr=1e-6"], summary("failed", 0.6, 1.5))
    write_run(root / "2", config(optim__lr=1e-4), ["optim.lr=1e-4"], summary("finished", 0.9, 3.0))
    write_run(root / "3", config(optim__lr=1e-3), ["optim.lr=1e-3"], None)  # still running
    sweep_summary.main([str(root)])
    assert capsys.readouterr().out.split() == [str(root / "sweep.md"), str(root / "sweep.csv")]
    rows = list(csv.DictReader((root / "sweep.csv").open()))
    assert [r["run"] for r in rows] == ["1", "0", "2"]  # by optim.lr, the one key that varied
    assert list(rows[0])[:3] == ["run", "optim.lr", "status"]
    assert [r["status"] for r in rows] == ["failed", "finished", "finished"]
    assert [float(r["best_val_accuracy"]) for r in rows] == [0.6, 0.8, 0.9]
    assert rows[2]["seconds_per_round"] == "3.0" and rows[2]["total_bytes"] == "300"
    text = (root / "sweep.md").read_text()
    assert "| 1 | 1e-06 | failed | 3 | 75.00% | 60.00% | 3 | 70.00% | 70.00% | 300 B |" in text
    assert "shared: hiso  P=5  K=1  batch=8  clients=2/6  seed=0" in text
    assert "running or killed): 3" in text


def test_summarize_refuses_a_directory_without_runs(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        sweep_summary.main([str(tmp_path)])
    assert stopped.value.code == 2
    assert "no run under" in capsys.readouterr().err


def test_summarize_escapes_text_and_averages_over_seeds(tmp_path: Path) -> None:
    root = tmp_path / "multirun"
    prompt = "Review: {s}\nSentiment | mood:"
    for i, (lr, seed, best) in enumerate([(1e-5, 0, 0.8), (1e-5, 1, 0.6), (1e-6, 0, 0.5)]):
        cfg = config(optim__lr=lr, seed=seed)
        cfg["dataset"] = {"prompt": prompt if lr == 1e-5 else "plain"}
        write_run(
            root / str(i), cfg, [f"optim.lr={lr}", f"seed={seed}"], summary("finished", best, 1.0)
        )
    keys, rows, shared = sweep_summary.sweep_rows(root)
    text = sweep_summary.markdown(root, keys, rows, shared)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[:4])  # intact rows
    assert "Review: {s}\\nSentiment \\| mood:" in text
    over = text.split("## Over seeds")[1]
    # lr 1e-5, seeds 0 and 1: best validation 80% and 60%: mean 70, sd sqrt(200) = 14.14
    assert (
        "| 1e-05 | Review: {s}\\nSentiment \\| mood: | 0, 1 | 75.00 ± 0.00 | 70.00 ± 14.14 |"
        in over
    )
    assert "| 1e-06 | plain | 0 | 75.00 | 50.00 |" in over


def test_plot_draws_a_sweep_directory_as_mean_and_band_over_seeds(tmp_path: Path, capsys) -> None:
    root = tmp_path / "sweep"
    for i, (lr, seed) in enumerate([(1e-5, 0), (1e-5, 1), (1e-6, 0), (1e-6, 1)]):
        write_run(root / str(i), config(optim__lr=lr, seed=seed), [f"optim.lr={lr}"], None)
    out = tmp_path / "bands.png"
    sweep_plot.main([str(root), "-o", str(out)])
    assert capsys.readouterr().out.strip() == str(out) and out.read_bytes()[:8] == PNG_MAGIC
    assert sweep_plot.run_dirs_of([root]) == [root / str(i) for i in range(4)]
    labels, _ = sweep_plot.labels_and_footer(sweep_plot.run_dirs_of([root]), leave_out=("seed",))
    assert labels == ["hiso optim.lr=1e-05"] * 2 + ["hiso optim.lr=1e-06"] * 2
