"""`hiso-run`: compose the config, check every input, build the model and task, run, summarise.

Exit codes: 0 done, 1 a failure during a run, 2 an input error (reported in one message before
anything heavy loads) or a run directory in use by another run (hiso/run_lock.py), 74 an output
that could not be written (a full disk, a read-only or removed run directory: one message naming
the file; hiso/tracking/unwritten.py), 128 + n a signal n (hiso/stop.py). In a sweep a failed run
does not stop the others; the sweep exits 1 at its end (hiso/sweep_failures.py); an output that
cannot be written stops the sweep.

Under `accelerate launch` (or torchrun) every launched process runs the same job on its own
replica (hiso/federation/processes.py); the main process alone writes: Hydra's files, metrics,
summary, checkpoints, plots, wandb. The others run in the main process's run directory, which
they receive from it once Hydra has made it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hiso.caches import redirect_caches
from hiso.command_line import answers_itself, expand_eval, print_version
from hiso.config import conf_dir, register_configs, validate
from hiso.help import asks_for_help, help_text
from hiso.preflight import check_command, check_logger, exit_input_error
from hiso.run_lock import RunBusy, RunLock, run_directory
from hiso.run_messages import print_interrupted, print_skipped, print_summary, print_unwritten
from hiso.schema import SetupError
from hiso.stop import Interrupted, StopSignals, exit_on_signals_while_starting

if TYPE_CHECKING:  # torch loads only when a job runs: --help, --version and completion stay fast
    import torch

    from hiso.federation.processes import Processes

register_configs()


def resolve_device(name: str) -> torch.device:
    """The device a `device=` setting gives this process (accelerate's choice for auto)."""
    from hiso.federation.processes import start_processes

    return start_processes(name).device


def run(
    cfg: Any,
    run_dir: Path,
    state: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    processes: Processes | None = None,
    job: str | None = None,
) -> dict[str, Any]:
    """Build everything from a validated config and run it, writing outputs and checkpoints
    under run_dir; from round 0, or from a resume `state` (hiso/resume.py: a snapshot's, and/or
    the trajectory entries to replay with the metrics of their rounds). SIGINT and
    SIGTERM stop it after the round in progress: outputs and a checkpoint are written and
    Interrupted is raised. A process other than the main one (`processes`, default: started
    from cfg.device) only keeps its replica in step: it writes nothing and returns {}. `job`
    (a sweep's job) starts its console lines, which parallel jobs print to one console."""
    import torch

    from hiso.algorithms import algorithm_class
    from hiso.federation.processes import start_processes
    from hiso.federation.simulator import Simulation
    from hiso.models import build_model
    from hiso.preflight import read_checked_data
    from hiso.resume import RunCheckpoints, keeps_best_model
    from hiso.tasks import build_task
    from hiso.tracking.patience import Patience
    from hiso.tracking.tracker import Tracker

    run_dir = Path(run_dir)
    with StopSignals() as stop:
        processes = processes or start_processes(cfg.device)
        device = processes.device
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        data = read_checked_data(cfg)
        model, tokenizer = build_model(cfg.model, device, cfg.seed)
        task = build_task(cfg, tokenizer, data)
        kept = keeps_best_model(cfg)
        best = run_dir / "best-model.pt" if kept else None
        # a snapshot leaves the best round's model to a replay (from the trajectory, which a
        # resume reads with metrics.jsonl) unless best-model.pt is kept
        replayable = algorithm_class(cfg.algo.name).replayable and cfg.logger.jsonl
        simulation = Simulation(cfg, model, task, device, best, processes, replayable and not kept)
        if state is not None:
            history = state["tracker"]["history"]
            simulation.resume(state["simulation"], state.get("trajectory", ()), history)
        rounds = cfg.federation.rounds
        if not processes.is_main:
            simulation.run(lambda record: None, stop.requested)
            if stop.signum is not None and simulation.round != rounds:
                where = f"after round {simulation.round} of {rounds}"
                raise Interrupted(stop.signum, where, between_rounds=True)
            return {}
        name = f"{cfg.algo.name}-{cfg.model.name}-{cfg.dataset.name}-s{cfg.seed}"
        container = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(container, dict)
        history = None if state is None else state["tracker"]["history"]
        tracker = Tracker(
            run_dir, cfg.logger, container, rounds, run_name=name, history=history, job=job
        )
        patience = Patience(cfg.federation.patience, tracker.history)

        def log(record: dict[str, Any]) -> None:
            tracker.log(record)
            patience.observe(record)

        checkpoints = RunCheckpoints(run_dir, cfg, container, list(overrides), simulation, tracker)
        simulation.evaluation.announce = simulation.health.note = tracker.note
        extras: dict[str, Any] = {
            "algorithm": cfg.algo.name,
            "model": cfg.model.name,
            "dataset": cfg.dataset.name,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            # torch's intra-op threads: `threads`, else torch's default, which a joblib sweep's
            # worker gets as its share of the cores (joblib sets OMP_NUM_THREADS = cores // n_jobs)
            "threads": torch.get_num_threads(),
        }
        try:
            # the early-stopping hook: the loop asks this before each round
            halt = lambda: stop.requested() or patience.exhausted  # noqa: E731
            extras |= simulation.run(log, halt, checkpoints.on_round)
            if patience.exhausted and simulation.round != rounds:
                extras |= stopped_early(simulation, patience)
            checkpoints.at_end()
        except Interrupted as now:  # a second signal: the newest checkpoint stays as it is
            tracker.finish(extras, cfg.federation.target_accuracy, "interrupted", now.exit_code)
            saved = checkpoints.saved
            kept = "no checkpoint" if saved is None else f"the newest checkpoint is round {saved}"
            if checkpoints.trajectory is not None:
                kept += "; the trajectory holds the rounds completed (resume= replays it)"
            raise Interrupted(
                now.signum,
                f"at once (a second signal) in round {(simulation.round or 0) + 1} of {rounds}; "
                + kept,
            ) from None
        except BaseException as error:
            tracker.close_on_error(error)
            raise
        if stop.signum is None or simulation.round == rounds:
            return tracker.finish(extras, cfg.federation.target_accuracy)
        exit_code = 128 + stop.signum
        tracker.finish(extras, cfg.federation.target_accuracy, "interrupted", exit_code)
        where = f"after round {simulation.round} of {rounds}"
        raise Interrupted(stop.signum, where, between_rounds=True)


def stopped_early(simulation: Any, patience: Any) -> dict[str, Any]:
    """The summary's figures of a run that early stopping ended: where it stopped, the test split
    scored with the final model and with the best validation round's (where it scores test)."""
    stopped = {"stopped_early_at": simulation.round, "patience": patience.limit}
    if not simulation.cfg.federation.score_test:
        return stopped
    final = simulation.evaluation.evaluate("test", simulation.round)
    return {
        **stopped,
        "final_test_accuracy": final["test_accuracy"],
        "final_test_loss": final["test_loss"],
        **simulation.evaluation.test_at_best(final),
    }


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    # imported here, not above: transformers and datasets read the hub switches as they load
    from hiso.federation.health import NonFiniteLossError
    from hiso.federation.processes import ReplicaMismatchError, start_processes
    from hiso.network import fall_back_offline
    from hiso.resume import prepare
    from hiso.tracking.unwritten import EXIT_CODE as UNWRITTEN_EXIT
    from hiso.tracking.unwritten import OutputError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    main = True  # the process that prints, until the processes are known
    lock: RunLock | None = None
    processes: Processes | None = None
    try:
        validate(cfg)
        check_logger(cfg.logger)
        processes = start_processes(cfg.device)
        main = processes.is_main
        run_dir = processes.broadcast(run_dir)
        lock = _lock(run_directory(cfg, run_dir), processes)
        start = prepare(cfg, run_dir, list(HydraConfig.get().overrides.task))
        processes.wait()  # every process has read the run directory before the main one writes
        run_dir = start.run_dir
        if start.finished is not None:
            if main:
                print_skipped(start.finished, start.cfg, run_dir)
            processes.close()
            return start.finished.get("best_val_accuracy")
        job = None
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            job = HydraConfig.get().sweep.subdir  # parallel jobs' lines tell whose they are
            if start.cfg.logger.wandb.group is None:
                start.cfg.logger.wandb.group = HydraConfig.get().sweep.dir  # the sweep's runs
        if main and (notice := fall_back_offline(start.cfg.logger)):
            print(notice, file=sys.stderr)
        summary = run(start.cfg, run_dir, start.state, start.overrides, processes, job)
        processes.close()
    except SetupError as error:
        exit_input_error(str(error))
    except (NonFiniteLossError, ReplicaMismatchError) as error:
        if main:
            print(f"hiso-run: stopped: {error}; metrics so far are in {run_dir}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            return None  # the sweep goes on; hiso/sweep_failures.py reports it at the end
        sys.exit(1)
    except Interrupted as stopped:
        if main:
            print_interrupted(stopped, run_dir)
        if stopped.between_rounds and processes is not None:
            processes.close()  # the others stopped after the same round: leave together
        sys.exit(stopped.exit_code)
    except OutputError as error:
        if main:
            print_unwritten(error, run_dir)
        sys.exit(UNWRITTEN_EXIT)
    finally:
        if processes is not None:
            processes.leave()  # on an error too: no process exits holding the group
        if lock is not None:
            lock.release()
    if main:
        print_summary(summary, run_dir)
    return summary.get("best_val_accuracy")


def _lock(run_dir: Path, processes: Processes) -> RunLock | None:
    """The run directory's lock, taken by the main process alone (hiso/run_lock.py); a refusal
    reaches every process, so that all of them stop with it."""
    # a resume=DIR that is no directory is prepare()'s to report
    lock = RunLock(run_dir) if processes.is_main and run_dir.is_dir() else None
    refused = None
    if lock is not None:
        try:
            lock.acquire()
        except RunBusy as busy:
            refused = str(busy)
    refused = processes.broadcast(refused)
    if refused is not None:
        raise SetupError(refused)
    return lock


def _resume_in_place(argv: list[str]) -> list[str]:
    """`hiso-run resume=DIR` runs in DIR itself: Hydra's run directory is set to DIR and Hydra
    writes no .hydra/ there (the run's own saved config stays as it was). Unchanged for
    resume=auto, a DIR that does not exist (the run reports it), multiruns and an explicit
    hydra.run.dir."""
    values = [a.removeprefix("resume=") for a in argv if a.startswith("resume=")]
    if (
        not values
        or values[-1] == "auto"
        or not Path(values[-1]).is_dir()
        or any(a in ("-m", "--multirun") or a.startswith("hydra.run.dir=") for a in argv)
    ):
        return argv
    return [*argv, f"hydra.run.dir={values[-1]}", "hydra.output_subdir=null"]


def _follow_main_process(argv: list[str]) -> list[str]:
    """Under a launcher with several processes: one job (a sweep is refused), and on every
    process but the main one, Hydra writes nothing (no run directory of its own, no .hydra/, no
    log file); such a process runs in the main process's run directory, received from it."""
    from hiso.launch import launched_processes, launched_rank

    if launched_processes() == 1:
        return argv
    if any(a in ("-m", "--multirun") for a in argv):
        exit_input_error(
            f"-m/--multirun under a launcher of {launched_processes()} processes: the processes "
            "run one job together; launch one command per job (or sweep without the launcher)"
        )
    if launched_rank() == 0:
        return argv
    quiet = ("hydra/job_logging=disabled", "hydra/hydra_logging=disabled")
    return [*argv, "hydra.run.dir=.", "hydra.output_subdir=null", *quiet]


def main() -> None:
    """The console script: every job's inputs are checked before Hydra runs the first one;
    with $HISO_CACHE set, every cache goes below it (before any library that caches loads)."""
    args = sys.argv[1:]
    if "--version" in args:
        print_version()
        return
    if asks_for_help(args):
        print(help_text([a for a in args if not a.startswith("-")]))
        return
    with exit_on_signals_while_starting():
        redirect_caches()
        sys.argv = expand_eval(sys.argv)
        if not answers_itself(sys.argv[1:]):
            sys.argv = _follow_main_process(_resume_in_place(sys.argv))
        check_command()
        _main()


if __name__ == "__main__":  # python -m hiso.cli, the form `accelerate launch -m` runs
    main()
