"""Structured configuration: the schema Hydra composes into, and the checks that run before
anything loads.

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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from hiso.naming import checkpoint_name

# the model groups' names: ${checkpoint_name:${.path},GROUP} (hiso/naming.py), resolvable
# wherever the config is read
if not OmegaConf.has_resolver("checkpoint_name"):
    OmegaConf.register_new_resolver("checkpoint_name", checkpoint_name)

# Two families share the simulator. Scalar-only: clients send projected gradients, every party
# applies the averaged record (MeZO is its one-client, central-difference, P = 1 preset).
SCALAR_ALGORITHMS = ("hiso", "decomfl", "mezo")
# Full-update: clients (first-order SGD, or zeroth-order for FedZO) send their whole model change
# and a server optimiser moves the model by the mean change.
ADAPTIVE_SERVER_RULES = {"fedadam": "adam", "fedyogi": "yogi", "fedadagrad": "adagrad"}
FIRST_ORDER_ALGORITHMS = ("fedavg", *ADAPTIVE_SERVER_RULES)
FULL_UPDATE_ALGORITHMS = (*FIRST_ORDER_ALGORITHMS, "fedzo")
ALGORITHMS = SCALAR_ALGORITHMS + FULL_UPDATE_ALGORITHMS
# the largest run seed: numpy's and torch's generators both accept 0 .. 2^64 - 1
MAX_SEED = 2**64 - 1


class SetupError(Exception):
    """Input a run cannot start from; the message says what is wrong and how to supply it."""


class ConfigError(SetupError, ValueError):
    """A configuration value that cannot run; the message names the field, value and allowed set."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}.")


@dataclass
class AlgoConfig:
    """The algorithm (the algo group) and its estimator, curvature and server optimiser."""

    # the algorithm: hiso, decomfl, mezo (scalar-only); fedavg, fedadam, fedyogi, fedadagrad,
    # fedzo (full-update); set by the algo group
    name: str = "hiso"
    # P: directions (directional derivatives) estimated per local step
    num_perturbations: int = 5
    # smoothing radius: the loss is evaluated at x + mu * direction
    mu: float = 1e-3
    # forward: (f(x + mu u) - f(x)) / mu; central: (f(x + mu u) - f(x - mu u)) / (2 mu)
    difference: str = "forward"
    # HiSo curvature decay: H <- beta * H + (1 - beta) * (dx^2 + eps); 1 keeps H = 1 (DeComFL)
    beta: float = 0.95
    # added to dx^2 in HiSo's curvature update
    eps: float = 1e-8
    # HiSo's H is clamped below by this value
    curvature_floor: float = 1e-8
    # which local steps update HiSo's H: last (the round's last step) or every step
    curvature_steps: str = "last"
    # HiSo's H: parameter (the paper's, one entry per parameter) or global (an ablation: one
    # number, updated from the scalars alone by the mean over coordinates of E[dx^2])
    curvature_scope: str = "parameter"
    # keep a step's P directions between perturbing and updating instead of regenerating them:
    # on, off, or auto (on when P x d float32 values fit in a quarter of the free memory); the
    # decision, why, and the bytes it holds go to summary.json
    direction_cache: str = "auto"
    # threads drawing directions (null: torch's thread count on CPU, 1 on a GPU); results agree
    # bit for bit whatever the count
    direction_threads: int | None = None
    # adaptive server optimisers (FedAdam/FedYogi/FedAdagrad): x <- x + server_lr m / sqrt(v + tau)
    # with m, v from zero and no bias correction; server_lr null = optim.lr (the DeComFL code's)
    server_lr: float | None = None
    # server first-moment decay b1 in m <- b1 m + (1 - b1) delta (FedAdam, FedYogi)
    server_beta1: float = 0.9
    # server second-moment decay b2 (FedAdam, FedYogi)
    server_beta2: float = 0.999
    # tau in sqrt(v + tau) of the adaptive server step
    server_tau: float = 1e-8


@dataclass
class OptimConfig:
    """The clients' optimiser."""

    # learning rate of the clients' steps (and of the server's with algo.server_lr null)
    lr: float = 1e-5
    # constant, or cosine decay from lr to 0 over federation.rounds (a function of the round
    # number, so it costs no communication)
    lr_schedule: str = "constant"
    # client momentum in [0, 1), zeroth-order only (FedZO's restarts from zero every round)
    momentum: float = 0.0
    # examples per client per local step
    batch_size: int = 16


@dataclass
class FederationConfig:
    """The simulated federation: clients, sampling, rounds and evaluation cadence."""

    # M: clients the training examples are split over
    num_clients: int = 6
    # m: clients sampled each round, 1 to num_clients
    clients_per_round: int = 2
    # K: local steps per sampled client per round
    local_steps: int = 1
    # rounds to run
    rounds: int = 100
    # score the validation split every N rounds (and at round 0 and the end; 0: only those)
    eval_every: int = 25
    # client split: iid, or dirichlet (per-client class proportions from Dir(alpha * class
    # frequencies), balanced to equal shards)
    partition: str = "dirichlet"
    # alpha of the dirichlet split (> 0; smaller is more skewed)
    dirichlet_alpha: float = 1.0
    # validation accuracy in (0, 1] whose first round is reported as rounds_to_target (null: none)
    target_accuracy: float | None = None
    # early stopping: end the run after N evaluations in a row without a better validation
    # accuracy (null: run every round)
    patience: int | None = None
    # evaluate all sampled clients' batches in one concatenated forward (else one per client)
    concat_clients: bool = True
    # split each evaluated batch into forwards of similar length: auto, off, or at most N forwards
    length_buckets: str = "auto"
    # also score the test split every N rounds (0: only at round 0, the last round and the model
    # of the best validation round); the validation split is scored every eval_every rounds
    test_every: int = 0
    # nan_policy=skip: stop after this many consecutive skipped (NaN/inf) rounds
    max_skipped_rounds: int = 5
    # with several processes (accelerate launch): compare checksums of every process's parameters
    # and optimizer state (HiSo's H, momentum) every N rounds and at the last; 0: never
    checksum_every: int = 10


@dataclass
class LoRAConfig:
    """LoRA adapters through peft; r = 0 trains every weight."""

    # adapter rank (0: no LoRA, every weight trained)
    r: int = 0
    # LoRA scaling alpha (the update is scaled by alpha / r)
    alpha: float = 16.0
    # names of the modules that get adapters
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class ModelConfig:
    """The model (the model group): where its weights come from and how it runs."""

    # the run's model name (run directory, summary, wandb, per-model prompt); the built-in groups
    # set ${checkpoint_name:${.path},GROUP}: the group's name, or with model.path the checkpoint's
    name: str = MISSING
    # hf (a Hugging Face causal LM) or cnn (the small CNN, for vision datasets)
    kind: str = "hf"
    # Hugging Face hub id of the checkpoint
    hub_id: str | None = None
    # a local checkpoint directory (takes precedence over every other source)
    path: str | None = None
    # a registry package that ships the weights as one GGUF file (converted once, then cached)
    gguf_package: str | None = None
    # the GGUF file in that package (null: its only .gguf file)
    gguf_file: str | None = None
    # cnn: channels of its two convolutions
    channels: int = 8
    # cnn: width of its hidden linear layer
    hidden: int = 32
    # forward precision: float32, or bfloat16 autocast over float32 master weights
    forward_dtype: str = "float32"
    lora: LoRAConfig = field(default_factory=LoRAConfig)


@dataclass
class DataFiles:
    """Local files of a dataset (csv, json/jsonl or parquet, by extension)."""

    # the training file (the validation split is carved from it)
    train: str | None = None
    # the test file
    test: str | None = None


@dataclass
class DatasetConfig:
    """The task (the dataset group): where its examples come from and how they are prompted."""

    # the task (its reader and default template); set by the dataset group
    name: str = MISSING
    # text (prompts for a causal LM) or vision (images for the CNN)
    kind: str = "text"
    # where examples come from: embedded (shipped by a registry package), hub, or local files
    source: str = "embedded"
    # source=hub: the dataset's hub path, e.g. nyu-mll/glue
    hub_path: str | None = None
    # source=hub: its configuration name, e.g. sst2
    hub_name: str | None = None
    # source=hub: the split the training examples come from
    train_split: str = "train"
    # source=hub: the split used as the test split
    test_split: str = "validation"
    # source=local: the files
    data_files: DataFiles = field(default_factory=DataFiles)
    # task field -> column of the data files, the schema's one free-form mapping; on the
    # command line +dataset.columns.<field>=<column> (Hydra closes every mapping: `+` adds a key)
    columns: dict[str, str] = field(default_factory=dict)
    # a built-in prompt template by name (null: the dataset's own); see hiso/tasks/templates.py
    template: str | None = None
    # your own prompt: a Python format string over the dataset's columns, e.g. "{text} It was"
    # (null: the built-in template); a dataset.name that is not built in needs it
    prompt: str | None = None
    # one word per class, in class order, each a single token of the model's tokenizer, with the
    # leading space it takes after the prompt (" good" after "It was"); null: the template's
    label_words: list[str] | None = None
    # the column holding each example's class: an id 0..classes-1, or one of dataset.label_names
    label_column: str = "label"
    # label strings in class order (matched in any case), for a label column of strings; null:
    # class ids only (a built-in dataset names its own classes)
    label_names: list[str] | None = None
    # generative tasks: the column holding each example's gold answer (a string, a list of them,
    # or {"text": [...]}); trained on the first, scored by SQuAD F1 against all; null: classify
    answer_column: str | None = None
    # prompt length in tokens; longer prompts are cut from the end of the example text
    max_length: int = 64
    # use only the first N training examples (null: all)
    max_train: int | None = None
    # use only the first N test examples (null: all)
    max_test: int | None = None
    # examples carved from the training data for model selection (best round, learning rate):
    # null = min(500, 10% of them), 0 = none; drawn by a generator seeded by validation_seed
    validation_size: int | None = None
    # seed of that draw (0 to 2^64 - 1), independent of the run seed
    validation_seed: int = 0
    # examples per forward when evaluating
    eval_batch_size: int = 64
    # generative tasks (SQuAD): most tokens generated per answer
    generation_tokens: int = 16


@dataclass
class WandbConfig:
    """The run's wandb run (logger.wandb)."""

    # offline (synced later with `wandb sync`), online (needs a key) or disabled
    mode: str = "offline"
    # wandb project
    project: str = "hiso-run"
    # wandb entity (user or team; null: the key's default)
    entity: str | None = None
    # runs grouped together (null: the sweep directory in a -m sweep, else none)
    group: str | None = None
    # tags of the run
    tags: list[str] = field(default_factory=list)
    # the run's display name (null: ALGO-MODEL-DATASET-sSEED)
    name: str | None = None
    # a free-text description of the run
    notes: str | None = None


@dataclass
class LoggerConfig:
    """Where a run's metrics go (the logger group)."""

    # progress on stderr: a bar on a terminal; elsewhere (a file, a pipe, a cluster log) one
    # plain line per evaluation and every log_every rounds
    console: bool = True
    # the plain progress line's cadence in rounds (stderr not a terminal)
    log_every: int = 10
    # write metrics.jsonl
    jsonl: bool = True
    # the wandb run: mode, project, entity, group, tags, name, notes
    wandb: WandbConfig = field(default_factory=WandbConfig)
    # draw curves.png at the end of the run
    plot: bool = True


@dataclass
class HubConfig:
    """Access to the Hugging Face hub."""

    # let the run download models and datasets from the Hugging Face hub; off, hiso-run sets
    # HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 (unless set in the environment) and reads only
    # local directories and the Hugging Face cache
    online: bool = False


@dataclass
class CheckpointConfig:
    """Checkpoints for stopping and resuming."""

    # a checkpoint every N rounds (0: only at the end of the run and when stopped by a signal)
    every: int = 50
    # how many of the newest checkpoints to keep (0: none is written; the run cannot be resumed)
    keep: int = 2


@dataclass
class RunConfig:
    """The whole run: one section per group, and the run-wide fields."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    # continue a run from its last checkpoint: null, its run directory, or auto (this job's own
    # output directory: skipped when finished, continued when cut off, started when empty)
    resume: str | None = None
    # run seed (0 to 2^64 - 1): client split, sampling, directions and shuffles derive from it
    seed: int = 0
    # auto (cuda when available), cpu, cuda or cuda:N
    device: str = "auto"
    # torch intra-op threads (null: torch's default); 1 is fastest for tiny models such as the CNN
    threads: int | None = None
    # a NaN/inf loss or scalar: stop the run, or skip the round (see max_skipped_rounds)
    nan_policy: str = "stop"


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


def validate(cfg: Any) -> None:
    """Check the keys, values and cross-field constraints of a composed RunConfig; raise
    ConfigError."""
    check_schema(cfg)
    a, o, f, m, d, lg = cfg.algo, cfg.optim, cfg.federation, cfg.model, cfg.dataset, cfg.logger
    _choice("algo.name", a.name, ALGORITHMS)
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
    if a.name == "mezo" and f.num_clients != 1:
        raise ConfigError(
            "federation.num_clients",
            f.num_clients,
            "1 with algo=mezo (the centralised reference: one client holds all the data)",
        )
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
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError("threads", cfg.threads, "null (torch's default) or an integer >= 1")
    if cfg.device not in ("auto", "cpu") and not str(cfg.device).startswith("cuda"):
        raise ConfigError("device", cfg.device, "auto, cpu, cuda or cuda:N")
