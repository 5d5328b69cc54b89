"""What `hiso-run` checks before anything heavy loads or any job starts.

The command line is composed the way `hydra.main` will compose it (Hydra 1.3's own parser, search
path and config loader; a multirun expanded by the basic sweeper's own rule), and every job's
config is validated, its output directory, logger and data checked, and the client shards its data
allows worked out. The first problem ends the command with one message and exit code 2.
"""

from __future__ import annotations

import copy
import netrc
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hiso.config import conf_dir, unknown_field, validate
from hiso.hub import set_hub_mode
from hiso.network import check_hub, check_wandb_server
from hiso.run_lock import check_free, run_directory
from hiso.schema import ConfigError, LoggerConfig, SetupError

if TYPE_CHECKING:
    from hiso.tasks.text import TextData

INPUT_ERROR = 2
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def read_checked_data(cfg: Any, already_read: dict[str, Any] | None = None) -> Any:
    """The task's examples, read and checked, and the model's checkpoint checked against them
    without its weights (hiso/models/hf_checks.py; label words against its tokenizer too), for a
    client split that gives every client at least one batch. `already_read` keeps what was read
    per dataset and model section, so that the jobs of a sweep over other fields read their data
    once."""
    from hiso.data.partition import check_shard_size
    from hiso.tasks import read_task_data

    already_read = {} if already_read is None else already_read
    key = OmegaConf.to_yaml(cfg.dataset) + OmegaConf.to_yaml(cfg.model)
    if key not in already_read:
        data = read_task_data(cfg)
        if cfg.model.kind == "hf":
            check_model(cfg, data)
        already_read[key] = data
    data = already_read[key]
    check_shard_size(data.num_train, cfg.federation.num_clients, cfg.optim.batch_size)
    return data


def check_model(cfg: Any, data: TextData) -> None:
    """The checkpoint against the run, and each label word one token of its tokenizer. A hub
    checkpoint not cached here is left to the model loader, whose message says how to fetch it;
    the words are checked again when the task is built."""
    from hiso.models.hf_checks import check_checkpoint
    from hiso.tasks.templates import label_token_ids

    tokenizer = check_checkpoint(cfg, data.generative)
    if tokenizer is not None and data.template.label_words:
        label_token_ids(data.template, tokenizer)


def check_logger(cfg: LoggerConfig) -> None:
    """wandb online needs an API key from the environment or `wandb login` (never the config)."""
    if cfg.wandb.mode == "online" and not _wandb_key_available():
        raise ConfigError(
            "logger.wandb.mode",
            cfg.wandb.mode,
            "offline or disabled; online needs WANDB_API_KEY in the environment or a key stored "
            "by `wandb login`, and this environment has neither",
        )


def _wandb_key_available() -> bool:
    """Whether wandb will find a key: WANDB_API_KEY (or an identity token file) or a netrc entry
    for the wandb host, where `wandb login` stores it. The key itself is never read."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_output_dir(key: str, path: Path) -> None:
    """`path` is a directory, or one that can be created in its nearest existing ancestor."""
    path = path.absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(key, str(path), f"a directory: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), f"a writable directory: {existing} is not writable")


def check_job(cfg: DictConfig, already_read: dict[str, Any]) -> None:
    """Check one composed job (with its hydra node): config, output directory, logger, data and
    shards (see read_checked_data for `already_read`)."""
    task = _task(cfg)
    validate(task)
    key = "hydra.sweep.dir" if cfg.hydra.mode == RunMode.MULTIRUN else "hydra.run.dir"
    if not str(OmegaConf.select(cfg, key) or "").strip():
        raise ConfigError(key, "", "a directory; an empty one would write into the current one")
    if cfg.hydra.mode == RunMode.MULTIRUN:
        check_output_dir("hydra.sweep.dir", Path(cfg.hydra.sweep.dir))
    else:
        check_output_dir("hydra.run.dir", Path(cfg.hydra.run.dir))
        check_free(run_directory(task, Path(cfg.hydra.run.dir)))
    check_logger(task.logger)
    check_wandb_server(task.logger)
    if task.resume in (None, "auto"):  # resume=DIR runs DIR's saved config, read as it starts
        read_checked_data(task, already_read)


def _task(cfg: DictConfig) -> DictConfig:
    """A composed job's config without its hydra node."""
    task = copy.deepcopy(cfg)
    with open_dict(task):
        del task["hydra"]
    return task


def _online(jobs: list[DictConfig]) -> bool:
    """hub.online of the command: one process, so one value for every job of a sweep."""
    values = {bool(cfg.hub.online) for cfg in jobs}
    if len(values) > 1:
        raise ConfigError("hub.online", "true,false", "one value for every job of a sweep")
    return values == {True}


def compose_jobs(args: Any) -> list[DictConfig]:
    """The config of every job `hiso-run ARGS` runs (one for a run, one per sweep point of the
    basic sweeper), composed with Hydra's own machinery as hydra.main in hiso/cli.py does."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import SearchPathException

    # the same folder hydra.main in hiso/cli.py reads (not the installed hiso.conf package, which
    # in an editable install may be another checkout's)
    config_path = args.config_path or str(conf_dir())
    search_path = create_automatic_config_search_path(None, "hiso.cli", config_path)
    if args.config_dir is not None:
        folder = os.path.abspath(args.config_dir)
        if not os.path.isdir(folder):
            raise SearchPathException(f"--config-dir {folder} is not a directory")
        search_path.prepend("command-line", f"file://{folder}", SearchPathQuery(provider="schema"))
    config_name = args.config_name or "config"
    overrides = list(args.overrides)
    app = Hydra.create_main_hydra2(task_name="cli", config_search_path=search_path)
    try:
        mode = app.get_mode(config_name, overrides)  # hydra.mode in the config, if set
        if args.multirun or (mode == RunMode.MULTIRUN and not args.cfg):
            return _sweep_jobs(app, config_name, [*overrides, "hydra.mode=MULTIRUN"])
        run = [*overrides, "hydra.mode=RUN"]
        return [app.compose_config(config_name, run, RunMode.RUN, with_log_configuration=False)]
    finally:
        GlobalHydra.instance().clear()


def _sweep_jobs(app: Any, config_name: str, overrides: list[str]) -> list[DictConfig]:
    """Each job of a multirun, as the basic sweeper will compose it before launching (none for
    other sweepers, whose jobs are not known in advance)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    base = app.compose_config(
        config_name, overrides, RunMode.MULTIRUN, with_log_configuration=False
    )
    if base.hydra.sweeper._target_ != BASIC_SWEEPER:
        return []
    params = [f"{k}={v}" for k, v in (base.hydra.sweeper.params or {}).items()]
    parser = OverridesParser.create(config_loader=app.config_loader)
    parsed = parser.parse_overrides([*params, *base.hydra.overrides.task])
    (jobs,) = BasicSweeper.split_arguments(parsed, None)
    return [app.config_loader.load_sweep_config(base, list(job)) for job in jobs]


def describe(error: Exception, overrides: list[str]) -> str:
    """One message for an input error: ours as raised, Hydra's and OmegaConf's on one line
    (an unknown key named with the fields that exist)."""
    if isinstance(error, SetupError):
        return str(error)
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    key = getattr(cause, "full_key", None)
    if key and (allowed := unknown_field(key)):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        given = OverridesParser.create().parse_overrides(overrides)
        value = next(
            (
                o.input_line.partition("=")[2] if o.is_sweep_override() else o.value()
                for o in given
                if o.key_or_group == key
            ),
            None,
        )
        return str(ConfigError(key, value, allowed))
    if isinstance(error, MissingConfigException) and error.options:
        return f"{str(error).splitlines()[0]}; options: {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse {error.override!r}: {error.message.splitlines()[0]}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if cause is not error:
        lines.append(str(cause).splitlines()[0])
    return ": ".join(line.rstrip(".") for line in lines[:2])


def check_command() -> None:
    """Compose and check every job of this command line; exit 2 with one message at the first
    input error; then set the hub's offline switches (hiso/hub.py) before the data is read.
    Help, info and shell completion are left to Hydra; `--cfg` validates the config it prints."""
    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException

    args = get_args_parser().parse_args()
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    if args.experimental_rerun is not None:
        return
    try:
        jobs = compose_jobs(args)
        if args.cfg:
            for cfg in jobs:
                validate(_task(cfg))
            if args.multirun:  # Hydra prints one job and refuses -m: each job of the sweep here
                print_sweep(jobs, args.cfg, args.resolve)
                sys.exit(0)
            return
        if args.multirun and jobs:
            check_launcher(jobs[0].hydra.launcher)
            check_resumed_once(jobs)
        online = _online(jobs)
        if online:
            check_hub()
        set_hub_mode(online)
        already_read: dict[str, Any] = {}
        for cfg in jobs:
            check_job(cfg, already_read)
    except (SetupError, HydraException, OmegaConfBaseException) as error:
        exit_input_error(describe(error, args.overrides))


def check_launcher(launcher: DictConfig) -> None:
    """A multirun's launcher before any job: Slurm's only where Slurm's commands are; joblib's
    n_jobs a number of jobs at once (joblib reads -k as all cores but k - 1)."""
    n_jobs = launcher.get("n_jobs")
    cores = os.cpu_count() or 1
    if isinstance(n_jobs, int) and (n_jobs == 0 or n_jobs < -cores):
        raise ConfigError(
            "hydra.launcher.n_jobs",
            n_jobs,
            f"the jobs run at once: 1 or more, or -k for all of this machine's {cores} cores "
            f"but k - 1 (-1: all of them; -{cores} at the least)",
        )
    if str(launcher.get("_target_", "")).endswith("SlurmLauncher") and not shutil.which("srun"):
        raise SetupError(
            "hydra/launcher: the Slurm launcher submits with sbatch and srun, which this machine "
            "does not have; launch the sweep from a Slurm login node (locally: "
            "hydra/launcher=joblib or submitit_local)"
        )


def check_resumed_once(jobs: list[DictConfig]) -> None:
    """No two jobs of a sweep resume one directory (they would write in it at once)."""
    seen: dict[Path, str] = {}
    for cfg in jobs:
        if cfg.resume in (None, "auto"):
            continue
        directory = run_directory(cfg, Path("."))
        job = " ".join(cfg.hydra.overrides.task)
        if directory in seen:
            raise SetupError(
                f"resume={cfg.resume}: two jobs of this sweep would resume {directory} at once "
                f"({seen[directory]!r} and {job!r}); resume each run directory in one job "
                "(a sweep of fresh runs with resume=auto continues each in its own directory)"
            )
        seen[directory] = job


def print_sweep(jobs: list[DictConfig], part: str, resolve: bool) -> None:
    """`hiso-run -m ... --cfg job|hydra|all`: each job's config under a comment naming its
    overrides."""
    if not jobs:
        raise SetupError("--cfg with -m needs the basic sweeper: other sweepers choose their jobs")
    for number, cfg in enumerate(jobs):
        shown = {"job": _task(cfg), "hydra": cfg.hydra, "all": cfg}[part]
        print(f"# job {number}: {' '.join(cfg.hydra.overrides.task)}")
        print(OmegaConf.to_yaml(shown, resolve=resolve))


def exit_input_error(message: str) -> NoReturn:
    """One line and exit code 2; under a launcher of several processes, each of which finds
    the same error, the main process alone prints it."""
    from hiso.launch import launched_rank

    if launched_rank() == 0:
        print(f"hiso-run: {message}", file=sys.stderr)
    sys.exit(INPUT_ERROR)
