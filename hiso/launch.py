"""Launchers as hiso-run sees them: the rank and process count a launcher (accelerate launch,
torchrun, MPI) gives each process, read before torch loads; and `python -m hiso.launch ARGS`,
`accelerate launch ARGS` once the hiso-run command in ARGS (`-m hiso.cli OVERRIDES...`) passes
hiso-run's own checks.

Under `accelerate launch` every process checks the command as it starts; an input error then
ends every process with exit code 2 and torchrun, which launched them, with its ChildFailedError
traceback and exit code 1. Checked here first, the same error ends the command before any process
starts: hiso-run's one message and exit code 2. A command that passes is handed to `accelerate
launch` in this same process (exec), so signals, output and the exit code are the launcher's.

On Ctrl-C torchrun's agent sends the processes SIGTERM and kills them 30 s later; hiso-run stops
after the current round or evaluation, which can take longer (a language model's validation on
a CPU), so the launch gives them SHUTDOWN_GRACE seconds (TORCH_ELASTIC_SHUTDOWN_TIMEOUT, unless
the environment sets it). They leave as soon as they have stopped; a second Ctrl-C stops them at
once."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# The launchers' rank and world-size variables (torchrun and accelerate launch, then MPI's).
RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
USAGE = (
    "python -m hiso.launch takes `accelerate launch`'s arguments ending in "
    "-m hiso.cli OVERRIDES..., e.g. python -m hiso.launch --num_processes 2 -m hiso.cli "
    "+experiment=digits device=cpu"
)


SHUTDOWN_GRACE = 3600  # seconds


def _launched(variables: tuple[str, ...], alone: int) -> int:
    return next((int(os.environ[v]) for v in variables if v in os.environ), alone)


def launched_rank() -> int:
    """This process's rank as its launcher set it (0 when started alone), read before any
    process group exists."""
    return _launched(RANK_VARIABLES, 0)


def launched_processes() -> int:
    """How many processes the launcher started (1 when started alone)."""
    return _launched(SIZE_VARIABLES, 1)


def hiso_command(args: list[str]) -> list[str]:
    """The hiso-run arguments in `accelerate launch` arguments: those after `-m hiso.cli`."""
    for i in range(len(args) - 1):
        if args[i] in ("-m", "--module") and args[i + 1] == "hiso.cli":
            return args[i + 2 :]
    from hiso.preflight import exit_input_error

    exit_input_error(USAGE)


def main() -> None:
    from hiso import cli
    from hiso.caches import redirect_caches
    from hiso.command_line import answers_itself, expand_eval
    from hiso.preflight import check_command, exit_input_error
    from hiso.stop import exit_on_signals_while_starting

    args = sys.argv[1:]
    command = hiso_command(args)
    with exit_on_signals_while_starting():
        redirect_caches()
        sys.argv = expand_eval(["hiso-run", *command])
        if not answers_itself(sys.argv[1:]):
            sys.argv = cli._resume_in_place(sys.argv)  # as hiso-run's main rewrites it
            check_command()
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if accelerate is None:
        exit_input_error("accelerate's console script is not installed beside this Python")
    os.environ.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_GRACE))
    os.execv(accelerate, [accelerate, "launch", *args])


if __name__ == "__main__":
    main()
