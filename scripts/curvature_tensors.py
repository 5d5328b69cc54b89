"""Is HiSo's curvature H different from one parameter tensor to another? Read off a checkpoint.

    python scripts/curvature_tensors.py CHECKPOINT [--out FILE] [--null-draws N]

CHECKPOINT is a HiSo run's `checkpoints/round-NNNNNN.ckpt`. The script names the parameters by
building the run's model from the checkpoint's config, then prints, per kind of tensor (the name
with its layer number taken out: `model.layers.N.self_attn.q_proj.weight`), the median of H in
each tensor of that kind, and beside it the range a median would have if the tensor's entries
were drawn at random from all of H's entries (1st to 99th percentile: resampled --null-draws
times for small tensors, the median's normal approximation for large ones). A Hessian-like H
would differ between kinds of tensors by orders of magnitude (layer norms against embeddings);
an H that is the same noise everywhere gives medians inside that range. Last, the correlation
of H with |x| in the first weight matrix.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from hiso.models import build_model

POOL = 2_000_000  # entries of H sampled (in proportion to each tensor's size) for the null
SMALL = 20_000  # tensors up to this size get a resampled null, larger ones the normal one


def kind(name: str) -> str:
    """The parameter's name with its layer number replaced by N."""
    return re.sub(r"\.\d+\.", ".N.", name)


def trainable_names(config: dict) -> list[str]:
    """The run's trainable parameter names, in the order the simulation keeps H."""
    cfg = OmegaConf.create(config)
    model, _ = build_model(cfg.model, torch.device("cpu"), int(cfg.seed))
    return [n for n, p in model.named_parameters() if p.requires_grad]


def null_range(pool: np.ndarray, size: int, draws: int, rng: np.random.Generator) -> tuple:
    """1st and 99th percentiles of the median of `size` entries drawn at random from H's
    distribution (`pool`, a sample of it): drawn with replacement for small sizes, and for large
    ones the normal approximation, median +- 2.326 / (2 f sqrt(size)) with f the density at the
    median read off the pool."""
    if size <= SMALL:
        medians = [np.median(rng.choice(pool, size)) for _ in range(draws)]
        return float(np.percentile(medians, 1)), float(np.percentile(medians, 99))
    q49, median, q51 = np.quantile(pool, (0.49, 0.5, 0.51))
    half = 2.326 * (q51 - q49) / 0.02 / (2 * np.sqrt(size))
    return float(median - half), float(median + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument("--null-draws", type=int, default=200)
    args = parser.parse_args()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False, mmap=True)
    curvature = state["simulation"]["state"]["curvature"]
    if curvature is None:
        raise SystemExit(f"{args.checkpoint}: no curvature (not a HiSo run)")
    parameters = state["simulation"]["parameters"]
    names = trainable_names(state["config"])
    assert len(names) == len(curvature), (len(names), len(curvature))
    rng = np.random.default_rng(0)
    total = sum(h.numel() for h in curvature)
    pool = np.concatenate(
        [
            rng.choice(h.flatten().numpy(), max(1, round(POOL * h.numel() / total)))
            for h in curvature
        ]
    )
    by_kind: dict[str, list[torch.Tensor]] = {}
    for name, h in zip(names, curvature, strict=True):
        by_kind.setdefault(kind(name), []).append(h)
    lines = [
        f"H by parameter tensor: {args.checkpoint} (round {state['simulation']['round']}; "
        f"{len(curvature)} tensors, {total:,} entries; H over all entries: median "
        f"{np.median(pool):.4g}, q05 {np.quantile(pool, 0.05):.4g}, "
        f"q95 {np.quantile(pool, 0.95):.4g})",
        "",
        "| tensor kind | tensors | entries each | median H per tensor (min - max) "
        "| random subset's median, 1st - 99th pct | inside |",
        "|---|---|---|---|---|---|",
    ]
    for name, tensors in by_kind.items():
        medians = [float(h.flatten().median()) for h in tensors]
        size = tensors[0].numel()
        low, high = null_range(pool, size, args.null_draws, rng)
        inside = sum(low <= m <= high for m in medians)
        lines.append(
            f"| {name} | {len(tensors)} | {size:,} | {np.median(medians):.4g} "
            f"({min(medians):.4g} - {max(medians):.4g}) | {low:.4g} - {high:.4g} "
            f"| {inside}/{len(tensors)} |"
        )
    first = next(i for i, h in enumerate(curvature) if h.dim() == 2 and i > 0)
    h = curvature[first].flatten().numpy()
    x = parameters[first].flatten().abs().numpy()
    lines += [
        "",
        f"Correlation of H with |x| over the entries of {names[first]}: "
        f"{np.corrcoef(h, x)[0, 1]:+.4f}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
