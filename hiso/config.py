"""Structured configuration: composing the schema (hiso/schema.py) with the config groups, and the
checks that run before anything loads.

The schema makes a wrong type an error during composition; `validate` then compares the composed
config with the schema (a key added with `+` is no field, a float must be finite, whatever the
field) and checks values and cross-field constraints, naming the field, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from hiso.naming import checkpoint_name
from hiso.schema import (
    MAX_SEED,
    ConfigError,
    RunConfig,
)

# the model groups' names: ${checkpoint_name:${.path},GROUP} (hiso/naming.py), resolvable
# wherever the config is read
if not OmegaConf.has_resolver("checkpoint_name"):
    OmegaConf.register_new_resolver("checkpoint_name", checkpoint_name)


def conf_dir() -> Path:
    """The config groups: `conf/` beside the package in a checkout or an editable install, the
    copy a wheel ships as `hiso.conf` otherwise."""
    checkout = Path(__file__).resolve().parents[1] / "conf"
    if (checkout / "config.yaml").is_file() and (checkout / "algo" / "hiso.yaml").is_file():
        return checkout
    return Path(str(resources.files("hiso.conf")))


def register_configs() -> None:
    ConfigStore.instance().store(name="base_config", node=RunConfig)


def compose_config(overrides: Sequence[str], validated: bool = True) -> Any:
    """The config `hiso-run OVERRIDES...` would run, composed outside the CLI (scripts, tests)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    if validated:
        validate(cfg)
    return cfg


def _section(hint: Any) -> Any:
    """The dataclass a field holds (also inside `X | None`), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    return next((arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)), None)


def _no_such_field(where: str, name: str, fields: list[str]) -> str:
    close = difflib.get_close_matches(name, fields, n=1)
    guess = f" (did you mean {where}{close[0]}?)" if close else ""
    return f"no such field; the fields of {where.rstrip('.') or 'the top level'} are " + (
        ", ".join(fields) + guess
    )


def unknown_field(path: str) -> str | None:
    """What is allowed instead, when the dotted `path` names no field of RunConfig (inside a
    free-form mapping such as dataset.columns every key is a field); None when it is one."""
    schema: Any = RunConfig
    where = ""
    for name in path.split("."):
        if schema is None:
            return None
        hints = typing.get_type_hints(schema)
        if name not in hints:
            return _no_such_field(where, name, list(hints))
        schema, where = _section(hints[name]), f"{where}{name}."
    return None


def check_schema(cfg: DictConfig, schema: Any = RunConfig, where: str = "") -> None:
    """Every key of `cfg` is a field of `schema` (however it was added: `+key=value` included),
    no field is left unset (???), and every float is finite (in lists too); nested sections are
    walked, so a field added to the schema is covered without naming it here."""
    hints = typing.get_type_hints(schema)
    for key in cfg:
        path = f"{where}{key}"
        if key not in hints:
            value = OmegaConf.to_container(cfg)[key]
            raise ConfigError(path, value, _no_such_field(where, str(key), list(hints)))
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(path, "???", "a value: this field has no default")
        value = cfg[key]
        section = _section(hints[key])
        if section is not None and isinstance(value, DictConfig):
            check_schema(value, section, f"{path}.")
        items = enumerate(value) if isinstance(value, ListConfig) else [(None, value)]
        for i, item in items:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(path if i is None else f"{path}[{i}]", item, "a finite number")


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, "one of " + ", ".join(allowed))


def _at_least(key: str, value: int, least: int) -> None:
    if value < least:
        raise ConfigError(key, value, f"an integer >= {least}")


def _positive(key: str, value: float, strict: bool = True) -> None:
    if value is None or (value <= 0 if strict else value < 0):
        raise ConfigError(key, value, "a number > 0" if strict else "a number >= 0")


def _check_own_task(d: Any) -> None:
    """The fields of your own task that cannot go together, and label word and name lists."""
    if d.prompt is not None and d.template is not None:
        raise ConfigError(
            "dataset.template", d.template, "null when dataset.prompt is set (it replaces it)"
        )
    if d.answer_column is not None:
        for key in ("label_words", "label_names"):
            if d[key] is not None:
                raise ConfigError(
                    f"dataset.{key}",
                    list(d[key]),
                    "null with dataset.answer_column (a generative task has no classes)",
                )
    for key in ("label_words", "label_names"):
        values = None if d[key] is None else list(d[key])
        if values is None:
            continue
        if len(values) < 2:
            raise ConfigError(f"dataset.{key}", values, "a list of two or more, one per class")
        seen = [v.lower() for v in values] if key == "label_names" else values
        if len(set(seen)) != len(seen):
            raise ConfigError(f"dataset.{key}", values, "distinct values, one per class")


def _check_snapshots(cfg: Any, replayable: bool) -> None:
    """checkpoint.keep=0 (no full snapshot) needs another way to resume a run that has rounds:
    its trajectory, and metrics.jsonl for the rest of its state."""
    if cfg.checkpoint.keep != 0 or cfg.federation.rounds == 0:
        return
    if not replayable:
        from hiso.algorithms import REGISTRY

        raise ConfigError(
            "checkpoint.keep",
            0,
            f"an integer >= 1 with algo={cfg.algo.name}: its rounds move the whole model, so "
            "only a full snapshot resumes it or rebuilds its model (0 is for the algorithms "
            "whose rounds are seeds and scalars, rebuilt from their trajectory: "
            + ", ".join(sorted(n for n, c in REGISTRY.items() if c.replayable))
            + ")",
        )
    if not cfg.logger.jsonl:
        raise ConfigError(
            "checkpoint.keep",
            0,
            "an integer >= 1 with logger.jsonl=false: without a snapshot a run resumes from its "
            "trajectory and the rows of metrics.jsonl",
        )


def validate(cfg: Any) -> None:
    """Check the keys, values and cross-field constraints of a composed RunConfig; raise
    ConfigError."""
    check_schema(cfg)
    a, o, f, m, d, lg = cfg.algo, cfg.optim, cfg.federation, cfg.model, cfg.dataset, cfg.logger
    from hiso.algorithms import algorithm_class  # torch: not for `import hiso.config`
    from hiso.optim.resolution import check_resolution

    algorithm = algorithm_class(a.name)
    _at_least("algo.num_perturbations", a.num_perturbations, 1)
    _positive("algo.mu", a.mu)
    _choice("algo.difference", a.difference, ("forward", "central"))
    if not 0.0 <= a.beta <= 1.0:
        raise ConfigError("algo.beta", a.beta, "a number in [0, 1]")
    _positive("algo.eps", a.eps, strict=False)
    _positive("algo.curvature_floor", a.curvature_floor)
    _choice("algo.curvature_steps", a.curvature_steps, ("last", "every"))
    _choice("algo.curvature_scope", a.curvature_scope, ("parameter", "global"))
    _choice("algo.direction_cache", a.direction_cache, ("auto", "on", "off"))
    if a.direction_threads is not None and a.direction_threads < 1:
        raise ConfigError(
            "algo.direction_threads", a.direction_threads, "null (automatic) or an integer >= 1"
        )
    if a.server_lr is not None:
        _positive("algo.server_lr", a.server_lr)
    if not 0.0 <= a.server_beta1 < 1.0:
        raise ConfigError("algo.server_beta1", a.server_beta1, "a number in [0, 1)")
    if not 0.0 <= a.server_beta2 < 1.0:
        raise ConfigError("algo.server_beta2", a.server_beta2, "a number in [0, 1)")
    _positive("algo.server_tau", a.server_tau)
    _positive("optim.lr", o.lr)
    _choice("optim.lr_schedule", o.lr_schedule, ("constant", "cosine"))
    if not 0.0 <= o.momentum < 1.0:
        raise ConfigError("optim.momentum", o.momentum, "a number in [0, 1)")
    _at_least("optim.batch_size", o.batch_size, 1)
    _at_least("federation.num_clients", f.num_clients, 1)
    if not 1 <= f.clients_per_round <= f.num_clients:
        raise ConfigError(
            "federation.clients_per_round",
            f.clients_per_round,
            f"an integer from 1 to federation.num_clients ({f.num_clients})",
        )
    _at_least("federation.local_steps", f.local_steps, 1)
    _at_least("federation.rounds", f.rounds, 0)
    if f.eval_every < 0:
        raise ConfigError(
            "federation.eval_every", f.eval_every, "an integer >= 0 (0: only at the end)"
        )
    _choice("federation.partition", f.partition, ("iid", "dirichlet"))
    _choice("federation.client_updates", f.client_updates, ("parallel", "sequential"))
    lb = str(f.length_buckets)
    if lb not in ("auto", "off") and not (lb.isdigit() and int(lb) >= 1):
        raise ConfigError(
            "federation.length_buckets", f.length_buckets, "auto, off or an integer >= 1"
        )
    if f.test_every < 0:
        raise ConfigError(
            "federation.test_every", f.test_every, "an integer >= 0 (0: only at the end)"
        )
    _positive("federation.dirichlet_alpha", f.dirichlet_alpha)
    _at_least("federation.max_skipped_rounds", f.max_skipped_rounds, 1)
    if f.checksum_every < 0:
        raise ConfigError(
            "federation.checksum_every", f.checksum_every, "an integer >= 0 (0: never)"
        )
    if f.target_accuracy is not None and not 0.0 < f.target_accuracy <= 1.0:
        raise ConfigError("federation.target_accuracy", f.target_accuracy, "a fraction in (0, 1]")
    if f.patience is not None and f.patience < 1:
        raise ConfigError("federation.patience", f.patience, "null (never stop early) or >= 1")
    _choice("model.kind", m.kind, ("hf", "cnn"))
    _choice("model.forward_dtype", m.forward_dtype, ("float32", "bfloat16"))
    if m.lora.r < 0:
        raise ConfigError("model.lora.r", m.lora.r, "an integer >= 0 (0: no LoRA)")
    if m.lora.r > 0:
        _positive("model.lora.alpha", m.lora.alpha)
        if not m.lora.targets:
            raise ConfigError("model.lora.targets", list(m.lora.targets), "a non-empty list")
        if m.kind != "hf":
            raise ConfigError("model.lora.r", m.lora.r, "0 for model.kind=cnn (LoRA is for hf)")
    _choice("dataset.kind", d.kind, ("text", "vision"))
    _choice("dataset.source", d.source, ("embedded", "hub", "local"))
    if (m.kind == "cnn") != (d.kind == "vision"):
        raise ConfigError(
            "model.kind",
            m.kind,
            f"'cnn' for vision and 'hf' for text datasets (dataset {d.name!r} is {d.kind})",
        )
    if d.validation_size is not None and d.validation_size < 0:
        raise ConfigError(
            "dataset.validation_size", d.validation_size, "null (automatic) or an integer >= 0"
        )
    _check_own_task(d)
    _at_least("dataset.max_length", d.max_length, 1)
    _at_least("dataset.eval_batch_size", d.eval_batch_size, 1)
    _at_least("dataset.generation_tokens", d.generation_tokens, 1)
    for key in ("max_train", "max_test"):
        if d[key] is not None and d[key] < 1:
            raise ConfigError(f"dataset.{key}", d[key], "null (every example) or an integer >= 1")
    _at_least("model.channels", m.channels, 1)
    _at_least("model.hidden", m.hidden, 1)
    _choice("logger.wandb.mode", lg.wandb.mode, ("offline", "online", "disabled"))
    _at_least("logger.log_every", lg.log_every, 1)
    _choice("nan_policy", cfg.nan_policy, ("stop", "skip"))
    for key, seed in (("seed", cfg.seed), ("dataset.validation_seed", d.validation_seed)):
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(key, seed, f"an integer from 0 to {MAX_SEED} (2^64 - 1)")
    if cfg.checkpoint.every < 0:
        raise ConfigError(
            "checkpoint.every", cfg.checkpoint.every, "an integer >= 0 (0: only at the end)"
        )
    if cfg.checkpoint.keep < 0:
        raise ConfigError("checkpoint.keep", cfg.checkpoint.keep, "an integer >= 0 (0: none)")
    _check_snapshots(cfg, algorithm.replayable)
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError("threads", cfg.threads, "null (torch's default) or an integer >= 1")
    if cfg.device not in ("auto", "cpu") and not str(cfg.device).startswith("cuda"):
        raise ConfigError("device", cfg.device, "auto, cpu, cuda or cuda:N")
    if algorithm.uses_directions:  # zeroth-order: a radius and a rate that move float32 weights
        check_resolution(cfg, algorithm.curvature_scaled)
    algorithm.check(cfg)
