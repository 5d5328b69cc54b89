"""What tells runs apart: a run directory's saved config and overrides, the config keys whose
values differ between runs, a label per run from them, and the one-line hyperparameter footer."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

ALGORITHM = "algo.name"
# bookkeeping that does not change what a run computes: never a label
_IGNORED = ("logger", "checkpoint", "resume", "device", "threads", "table_run")
# groups chosen by name: when the name differs, their other keys follow from it and appear
# only where the command line set them
_GROUPS = ("algo", "model", "dataset")
# (shown as, the dotted keys whose values it shows joined by "/") of the footer line, after the
# algorithm; clients: sampled per round / all
_HYPERPARAMETERS = (
    ("lr", ("optim.lr",)),
    ("P", ("algo.num_perturbations",)),
    ("K", ("federation.local_steps",)),
    ("batch", ("optim.batch_size",)),
    ("clients", ("federation.clients_per_round", "federation.num_clients")),
    ("seed", ("seed",)),
)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists and scalars are values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{dotted}.")
        else:
            flat[dotted] = value
    return flat


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's composed config (run_dir/.hydra/config.yaml) as dotted keys; {} without one."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    return flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=False))  # type: ignore[arg-type]


def overrides(run_dir: Path) -> list[str]:
    """The run's Hydra command-line overrides (run_dir/.hydra/overrides.yaml); [] without one."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    return [str(item) for item in OmegaConf.load(path)] if path.is_file() else []


def overridden_keys(items: Sequence[str]) -> set[str]:
    """The dotted keys that `key=value` overrides set (`+`, `++` and `~` prefixes dropped)."""
    return {item.split("=", 1)[0].lstrip("+~") for item in items}


def varying_keys(
    configs: Sequence[Mapping[str, Any]], overridden: Collection[str] = ()
) -> list[str]:
    """Dotted keys whose value differs between the configs (a missing key counts as a value),
    bookkeeping keys left out; inside a group whose name differs, only its name and the keys in
    `overridden`. In the first config's key order, then the others'."""
    keys = list(dict.fromkeys(key for config in configs for key in config))
    differ = [
        key
        for key in keys
        if key.split(".")[0] not in _IGNORED
        and len({repr(config.get(key)) for config in configs}) > 1
    ]
    renamed = {key.split(".")[0] for key in differ if key.split(".")[1:] == ["name"]}
    return [
        key
        for key in differ
        if key.split(".")[0] not in renamed or key.endswith(".name") or key in overridden
    ]


def show(value: Any) -> str:
    """A config value as a label writes it: floats in short form (1e-06, 0.001)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_labels(configs: Sequence[Mapping[str, Any]], overridden: Collection[str] = ()) -> list[str]:
    """One label per config: its algorithm, then `key=value` for every key that varies (the
    algorithm's own key shown once, as its value)."""
    keys = [key for key in varying_keys(configs, overridden) if key != ALGORITHM]
    labels = []
    for config in configs:
        parts = [show(config[ALGORITHM])] if ALGORITHM in config else []
        parts += [f"{key}={show(config.get(key, '-'))}" for key in keys]
        labels.append(" ".join(parts))
    return labels


def hyperparameter_line(config: Mapping[str, Any], keys: Collection[str] = ()) -> str:
    """The key hyperparameters of a run as one line (algorithm, lr, P, K, batch, clients, seed),
    leaving out those absent and those of the dotted `keys` (e.g. what a legend already names).
    `config` is nested or dotted."""
    flat = flatten(config)
    parts = [show(flat[ALGORITHM])] if ALGORITHM in flat and ALGORITHM not in keys else []
    for name, dotted in _HYPERPARAMETERS:
        if all(key in flat for key in dotted) and not set(dotted) & set(keys):
            parts.append(f"{name}=" + "/".join(show(flat[key]) for key in dotted))
    return "  ".join(parts)
