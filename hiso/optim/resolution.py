"""Settings too small for float32: a zeroth-order radius or rate below which the model's weights
cannot change, because every change rounds away.

The trainable weights are float32 whatever model.forward_dtype says (bfloat16 only autocasts the
forwards), so the bounds come from float32's eps, the gap between 1 and the next float32 number:
the gap around a weight x is between eps / 2 * |x| and eps * |x|, and x + d rounds back to x when
|d| is under half that gap; always when |d| < eps / 4 * |x|.

- The radius: a perturbation mu * z (z a direction, |z| about 1) must move the weights it is
  added to; weights of magnitude 1 (the layer-norm gains) need mu >= eps. Below that the two
  losses of a finite difference are those of one model and every scalar is zero.
- The rate: one round moves a weight by at most lr x |g| x |z| x AMPLIFIED, with a scalar
  |g| = |f(x + mu z) - f(x)| / mu of at most LOSS_CHANGE / mu. When even that step (|z| <= 1)
  is under eps / 4 x WEIGHT, no weight of typical magnitude or more moves, whatever the scalars.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from hiso.schema import ConfigError

EPS = torch.finfo(torch.float32).eps  # 1.19e-07
# a weight of typical magnitude (language models initialise theirs with std 0.02)
WEIGHT = 1e-2
# about the largest change of a cross-entropy loss one direction measures: over a vocabulary of
# 50,000 tokens the loss of a uniform guess is ln 50,000 = 10.8
LOSS_CHANGE = 10.0


def mu_bound() -> float:
    """The smallest radius that moves weights of magnitude 1 by a direction of magnitude 1."""
    return EPS


def lr_bound(cfg: Any, curvature: bool) -> float:
    """The smallest rate at which the largest step a round can take moves a weight of
    magnitude WEIGHT (see the module); `curvature`: the directions are H^-1/2 u (HiSo), H as
    small as algo.curvature_floor."""
    a, o = cfg.algo, cfg.optim
    amplified = 1.0 / (1.0 - o.momentum)  # momentum sums 1 / (1 - momentum) steps at most
    if curvature:
        amplified /= math.sqrt(a.curvature_floor)
    return EPS / 4 * WEIGHT * a.mu / (LOSS_CHANGE * amplified)


def check_resolution(cfg: Any, curvature: bool) -> None:
    """Refuse a zeroth-order algo.mu or optim.lr below its bound, naming the bound (`curvature`:
    see lr_bound)."""
    if cfg.algo.mu < mu_bound():
        raise ConfigError(
            "algo.mu",
            cfg.algo.mu,
            f"a number >= {mu_bound():.3g} (float32's eps): below it x + mu * z rounds back to x "
            "for float32 weights of magnitude 1, so the finite differences measure nothing",
        )
    bound = lr_bound(cfg, curvature)
    if cfg.optim.lr < bound:
        raise ConfigError(
            "optim.lr",
            cfg.optim.lr,
            f"a number >= {bound:.3g} with algo.mu={cfg.algo.mu}: below it even the largest "
            f"step a round can take (a loss change of {LOSS_CHANGE:g} over mu, amplified "
            "by momentum and, for HiSo, its curvature floor) is under a quarter of float32's eps "
            f"times a weight of magnitude {WEIGHT:g}, so no weight moves",
        )
