"""What `hiso-run` does with its command line before Hydra sees it: `--version`, the `eval`
sub-command, and which commands only ask something (help, completion) and run no job."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# Hydra's flags that answer and exit without a job
ASKING = ("--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc")
# `hiso-run eval ...`: score the starting model on the validation and test splits, train nothing,
# write no checkpoint and no plot; each applies unless the command line sets that field itself
EVAL = (
    "federation.rounds=0",
    "checkpoint.keep=0",
    "logger.plot=false",
    "hydra.run.dir=outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}_eval_${model.name}_${dataset.name}",
)


def print_version() -> None:
    """`hiso-run --version`: the installed package's version (Hydra's otherwise)."""
    try:
        print(f"hiso-run {version('hiso-run')}")
    except PackageNotFoundError:
        print("hiso-run (not installed: run from a checkout)")


def answers_itself(args: list[str]) -> bool:
    """Whether the command asks Hydra something (help, info, shell completion) and runs no job."""
    return any(arg in ASKING or arg.startswith(("--shell-completion=", "-sc=")) for arg in args)


def expand_eval(argv: list[str]) -> list[str]:
    """`hiso-run eval OVERRIDES` as `hiso-run EVAL OVERRIDES`, without the EVAL fields the
    overrides set themselves; any other command line unchanged."""
    if argv[1:2] != ["eval"]:
        return argv
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in argv[2:] if "=" in arg}
    kept = [field for field in EVAL if field.split("=", 1)[0] not in given]
    return [argv[0], *kept, *argv[2:]]
