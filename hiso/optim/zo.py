"""Scalar-only zeroth-order federated optimisation: DeComFL and HiSo as one state machine.

Everything a party does with a round record goes through `ZeroOrderOptimizer.apply_record`, a pure
function of (parameters, state, record): the server, a client catching up and a test's replica call
the same code and so agree bit for bit. DeComFL carries no state beyond the model (and an optional
momentum buffer); HiSo adds the diagonal curvature H (float32, H_0 = 1) and draws its directions
as z = H^{-1/2} u. With beta = 1, H stays 1 and HiSo is DeComFL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from hiso.optim.directions import DirectionStream, balanced_shares
from hiso.optim.schedule import LRSchedule
from hiso.protocol import RoundRecord

# Per-client mean losses at the model's current parameters, shape (C,).
LossFn = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Curvature:
    """HiSo's curvature rule: H <- beta * H + (1 - beta) * (dx^2 + eps), floored. With
    `scope="global"` H is one number for the whole model and dx^2 is replaced by its expectation
    over the directions averaged over coordinates, sum_p g_p^2 / (P^2 H): a function of the
    broadcast scalars alone (an ablation: the paper's rule gives every coordinate the same
    expected H, hiso/reproduce/curvature.py)."""

    beta: float = 0.95
    eps: float = 1e-8
    floor: float = 1e-8
    every_step: bool = False
    scope: str = "parameter"

    def after_steps(self, h: float, scalars: np.ndarray) -> float:
        """The global H after a record's steps: each updating step's mean dx^2 taken with the
        round's H = h, as in the per-parameter rule (float64, so every replica agrees)."""
        num_steps, num_dirs = scalars.shape
        steps = range(num_steps) if self.every_step else (num_steps - 1,)
        new = h
        for k in steps:
            mean_dx2 = float(np.square(scalars[k].astype(np.float64)).sum()) / (num_dirs**2 * h)
            new = max(self.beta * new + (1 - self.beta) * (mean_dx2 + self.eps), self.floor)
        return new


@dataclass(frozen=True)
class ZOSettings:
    num_perturbations: int
    mu: float
    lr: LRSchedule
    central: bool = False
    momentum: float = 0.0
    curvature: Curvature | None = None
    # keep the P directions of the last estimated step for the update that follows (P x d floats)
    cache_directions: bool = False
    # threads that draw and apply direction slices, each on its own share of the parameters
    # (drawing a Gaussian is serial in torch on CPU; the slices are independent streams)
    threads: int = 1


@dataclass
class ZOState:
    """Optimizer state every party holds beside the model; both lists are float32, per parameter."""

    curvature: list[torch.Tensor] | None = None
    momentum: list[torch.Tensor] | None = None

    def clone(self) -> ZOState:
        def copy(ts: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
            return None if ts is None else [t.clone() for t in ts]

        return ZOState(copy(self.curvature), copy(self.momentum))

    def state_dict(self) -> dict[str, list[torch.Tensor] | None]:
        return {"curvature": self.curvature, "momentum": self.momentum}

    def load_state_dict(self, state: dict[str, list[torch.Tensor] | None]) -> None:
        """Copy saved tensors into this state's own (same shapes, same device)."""
        for name in ("curvature", "momentum"):
            mine, saved = getattr(self, name), state[name]
            if (mine is None) != (saved is None):
                raise ValueError(f"saved {name} {'absent' if saved is None else 'present'}")
            for m, t in zip(mine or [], saved or [], strict=True):
                m.copy_(t)


@dataclass
class Share:
    """One thread's parameters (indices), its direction stream and its scratch buffers."""

    indices: list[int]
    directions: DirectionStream
    acc: torch.Tensor
    scale: torch.Tensor


@cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="hiso-directions")


@contextmanager
def evaluated_at(params: Sequence[torch.nn.Parameter], point: Sequence[torch.Tensor]) -> Iterator:
    """Run the model with `point` in place of its parameters' storage; restoring is exact."""
    saved = [p.data for p in params]
    try:
        for p, t in zip(params, point, strict=True):
            p.data = t
        yield
    finally:
        for p, t in zip(params, saved, strict=True):
            p.data = t


class ZeroOrderOptimizer:
    """Directions, estimates and record application for one set of trainable parameters."""

    def __init__(self, settings: ZOSettings, params: Sequence[torch.Tensor]) -> None:
        self.settings = settings
        self.shapes = [p.shape for p in params]
        device = params[0].device
        self.shares = []
        for indices in balanced_shares([s.numel() for s in self.shapes], settings.threads):
            largest = max(self.shapes[i].numel() for i in indices)
            self.shares.append(
                Share(
                    indices,
                    DirectionStream(self.shapes, device, indices),
                    torch.empty(largest, dtype=torch.float32, device=device),
                    torch.empty(largest, dtype=torch.float32, device=device),
                )
            )
        # u_{seed,p,i} of the last estimated step: _cache[p][i], valid for seed _cache_seed
        self._cache: list[list[torch.Tensor]] | None = None
        self._cache_seed: int | None = None
        if settings.cache_directions:
            self._cache = [
                [torch.empty(s, dtype=torch.float32, device=device) for s in self.shapes]
                for _ in range(settings.num_perturbations)
            ]

    @property
    def cache_bytes(self) -> int:
        """Memory the direction cache holds (0 when caching is off)."""
        tensors = [] if self._cache is None else [u for step in self._cache for u in step]
        return sum(u.numel() * u.element_size() for u in tensors)

    def init_state(self, params: Sequence[torch.Tensor]) -> ZOState:
        s = self.settings
        return ZOState(
            curvature=None if s.curvature is None else [self._ones(p) for p in params],
            momentum=None if s.momentum == 0 else [torch.zeros_like(p) for p in params],
        )

    def _ones(self, param: torch.Tensor) -> torch.Tensor:
        """H_0 for one parameter: its shape, or one entry when H is global (every parameter
        then holds a copy of the same number)."""
        assert self.settings.curvature is not None
        if self.settings.curvature.scope == "global":
            return torch.ones(1, dtype=torch.float32, device=param.device)
        return torch.ones_like(param)

    def _view(self, buffer: torch.Tensor, index: int) -> torch.Tensor:
        shape = self.shapes[index]
        return buffer[: shape.numel()].view(shape)

    def _each_parameter(self, work: Callable[[Share, int], None]) -> None:
        """work(share, i) for every parameter i, each share's parameters on its own thread."""

        def run(share: Share) -> None:
            for i in share.indices:
                work(share, i)

        if len(self.shares) == 1:
            run(self.shares[0])
        else:
            list(_pool(len(self.shares)).map(run, self.shares))  # list(): re-raise a failure

    def _inv_sqrt_curvature(self, state: ZOState, share: Share, index: int) -> torch.Tensor | None:
        if state.curvature is None:
            return None
        h = state.curvature[index]
        assert self.settings.curvature is not None
        if self.settings.curvature.scope == "global":  # one number, broadcast over any shape
            return torch.rsqrt(h[0])
        return torch.rsqrt(h, out=self._view(share.scale, index))

    def _gaussian(self, share: Share, seed: int, perturbation: int, index: int) -> torch.Tensor:
        """u from the cache when it holds this step's directions, else regenerated."""
        if self._cache is not None and self._cache_seed == seed:
            return self._cache[perturbation][index]
        return share.directions.gaussian(seed, perturbation, index)

    def perturb_into(
        self,
        out: Sequence[torch.Tensor],
        base: Sequence[torch.Tensor],
        state: ZOState,
        seed: int,
        perturbation: int,
    ) -> None:
        """out = base + mu * z_{seed, perturbation}, z = u (DeComFL) or H^{-1/2} u (HiSo),
        parameter by parameter; u goes to the cache when caching is on."""
        mu = self.settings.mu

        def perturb(share: Share, i: int) -> None:
            slot = None if self._cache is None else self._cache[perturbation][i]
            u = share.directions.gaussian(seed, perturbation, i, out=slot)
            scale = self._inv_sqrt_curvature(state, share, i)
            if scale is not None:  # z = u * H^{-1/2}, in a scratch buffer so a cached u stays u
                u = torch.mul(u, scale, out=self._view(share.acc, i))
            torch.add(base[i], u, alpha=mu, out=out[i])

        self._each_parameter(perturb)

    def estimate(
        self,
        params: Sequence[torch.nn.Parameter],
        base: Sequence[torch.Tensor],
        work: Sequence[torch.Tensor],
        state: ZOState,
        seed: int,
        losses: LossFn,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Projected gradients g (C, P) at `base` for every client the loss function covers, and
        the clients' losses at `base` (forward difference: f(base), computed anyway; central:
        the mean of f(base + mu z) and f(base - mu z), which equals f(base) to O(mu^2)).

        The perturbed points are written into `work` and swapped into the model, so the base is
        never modified and needs no restore.
        """
        s = self.settings
        self._cache_seed = None
        with evaluated_at(params, base):
            f0 = None if s.central else losses().astype(np.float64)
        scalars, centre = [], []
        for p in range(s.num_perturbations):
            self.perturb_into(work, base, state, seed, p)
            with evaluated_at(params, work):
                f_plus = losses().astype(np.float64)
            if s.central:
                for w, b in zip(work, base, strict=True):  # work <- base - (work - base)
                    w.sub_(b)
                    torch.sub(b, w, out=w)
                with evaluated_at(params, work):
                    f_minus = losses().astype(np.float64)
                scalars.append((f_plus - f_minus) / (2 * s.mu))
                centre.append((f_plus + f_minus) / 2)
            else:
                scalars.append((f_plus - f0) / s.mu)
        g = np.stack(scalars, axis=1).astype(np.float32)
        self._cache_seed = seed
        return g, (np.mean(centre, axis=0) if s.central else f0)

    def apply_record(
        self, params: Sequence[torch.Tensor], state: ZOState, record: RoundRecord
    ) -> None:
        """x and state after the record's K steps (all with H_r), then H_r -> H_{r+1}."""
        lr = self.settings.lr.at(record.round)
        self._apply(params, state, record.seeds, record.scalars, lr, update_curvature=True)

    def local_step(
        self,
        params: Sequence[torch.Tensor],
        state: ZOState,
        rnd: int,
        seed: int,
        scalars: np.ndarray,
    ) -> None:
        """A client's own step in round `rnd` on its local trajectory: same update, H kept."""
        lr = self.settings.lr.at(rnd)
        self._apply(params, state, (seed,), scalars.reshape(1, -1), lr, update_curvature=False)

    def _apply(
        self,
        params: Sequence[torch.Tensor],
        state: ZOState,
        seeds: Sequence[int],
        scalars: np.ndarray,
        lr: float,
        update_curvature: bool,
    ) -> None:
        s = self.settings
        num_steps, num_dirs = scalars.shape
        curvature = s.curvature if update_curvature else None
        per_parameter = curvature is not None and curvature.scope == "parameter"

        # Parameter-outer: each slice of x, m and H goes through every step in order; slices are
        # independent, so this equals the step-outer order exactly, with one pass over memory.
        def update(share: Share, i: int) -> None:
            x = params[i]
            scale = self._inv_sqrt_curvature(state, share, i)
            for k in range(num_steps):
                dx = self._view(share.acc, i).zero_()
                for p in range(num_dirs):
                    dx.add_(self._gaussian(share, seeds[k], p, i), alpha=float(scalars[k, p]))
                if scale is not None:
                    dx.mul_(scale)
                dx.div_(num_dirs)
                if state.momentum is not None:
                    update = state.momentum[i].mul_(s.momentum).add_(dx)
                else:
                    update = dx
                x.add_(update, alpha=-lr)
                last = k == num_steps - 1
                if per_parameter and state.curvature and (curvature.every_step or last):
                    h = state.curvature[i]
                    h.mul_(curvature.beta).addcmul_(dx, dx, value=1 - curvature.beta)
                    h.add_((1 - curvature.beta) * curvature.eps).clamp_min_(curvature.floor)

        self._each_parameter(update)
        if curvature is not None and not per_parameter and state.curvature:
            h = curvature.after_steps(float(state.curvature[0]), scalars)
            for entry in state.curvature:
                entry.fill_(h)
