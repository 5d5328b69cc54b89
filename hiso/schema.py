"""The configuration schema Hydra composes into: one dataclass per config group, each field with
its type, default and (in the comment above it) meaning, and the errors bad input raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

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

    # the algorithm: hiso, decomfl, mezo (scalar-only); fedkseed, fedkseed-pro (scalar-only, a
    # pool of K seeds); fedavg, fedadam, fedyogi, fedadagrad, fedzo (full-update); set by the
    # algo group
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
    # FedKSeed's K: candidate seeds drawn once from the run seed, each local step sampling one
    # (4096: the paper's setting and its code's default)
    seed_pool: int = 4096
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
    # score the test split at all (false: a learning-rate search, which selects on the
    # validation split alone and never looks at test; needs a validation split)
    score_test: bool = True
    # nan_policy=skip: stop after this many consecutive skipped (NaN/inf) rounds
    max_skipped_rounds: int = 5
    # the full-update family's clients: parallel (each starts from the server model, the server
    # steps by their mean change) or sequential (each starts from the previous sampled client's
    # model and the round ends at the last one's: what the DeComFL authors' FedAvg/FedAdam code
    # computes on one device, where FedAdam's server step is zero)
    client_updates: str = "parallel"
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
    # mode=online with the wandb server out of reach (one connection, 5 s to answer): true runs
    # offline instead (synced later with `wandb sync`), false refuses the run (exit 2)
    offline_fallback: bool = False


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
    """Full snapshots of a run's state for stopping and resuming. A replayable run (its rounds
    are seeds and scalars: hiso, decomfl, mezo, fedkseed...) also writes its trajectory, from
    which any round is rebuilt, so for it snapshots only shorten a resume's replay."""

    # a snapshot every N rounds (0: only at the end of the run and when stopped by a signal)
    every: int = 50
    # how many of the newest snapshots to keep (0: none, allowed for a replayable run only)
    keep: int = 1
    # best-model.pt, the best validation round's parameters, in the run directory: null saves it
    # for a run that cannot rebuild it by replay (dense rounds) only; true always; false never
    best_model: bool | None = None


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
