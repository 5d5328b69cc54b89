"""Run the commands of README.md and of the docs pages that show commands users copy (PAGES) as a
reader would: each ```bash block, its commands in order, in a fresh copy of the checkout.

    python scripts/readme_commands.py              # run them, shortened (CI: .ci/run)
    python scripts/readme_commands.py --compose    # compose and validate only (tests, seconds)
    python scripts/readme_commands.py docs/outputs.md   # only the pages named
    python scripts/readme_commands.py --jobs 1     # one block at a time (default: 2 at once)

The rules, per command (continuation lines joined):
- a trailing comment containing `# not run: REASON` skips it; it is listed with its reason;
- `hiso-run`, `make`, `python`, `accelerate` and the package's other console scripts (RUNS) are
  runs: run in full, a training run is shortened to SHORT, 2 rounds with 16 test and 16
  validation examples (appended to a `hiso-run` command line, to `make run`'s ARGS, and with 2
  rounds per stage to `scripts/reproduce.py`; a command with data files of its own keeps its
  validation split, whose size depends on them; a `-m` sweep runs the first value of each swept
  field, every config group choice still its own job), anything else runs as written; with
  --compose, each `hiso-run` command (skipped ones too) gets `--cfg job` (composed and validated,
  nothing runs; in this process, its words split as bash splits a command without expansions)
  and the other runs are left to the full check;
- a `hiso-run` training command that takes the same code path as an earlier one of any page (the
  same config group choices and overridden fields, only other values) is composed and validated
  in this process instead, and listed as sharing that command's run;
- `hiso-run --help`, `--cfg`, `--info` and every other command (mkdir, printf, ...) run as written;
- every `make ...` quoted in a page's text must also be a command of some bash block of the pages.
Each block runs in its own copy of the checkout (its tracked and not-ignored files; .venv linked
to this interpreter's environment, .cache to the checkout's), with that environment first on the
PATH as `source .venv/bin/activate` puts it. A command that exits non-zero fails the check;
`make` is not run when `make setup` is not up to date (it would rebuild the linked .venv).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from readme_blocks import Command, bash_blocks, quoted_make_commands

ROOT = Path(__file__).resolve().parents[1]
SHORT = ("federation.rounds=2", "dataset.max_test=16", "dataset.validation_size=16")
RUNS = (
    "hiso-run",
    "make",
    "python",
    "accelerate",
    "hiso-run-export",
    "hiso-summarize",
    "hiso-plot",
)
INFO_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i")
# the pages whose bash blocks users copy, relative to the checkout
PAGES = (
    "README.md",
    "docs/install.md",
    "docs/configuring.md",
    "docs/algorithms.md",
    "docs/outputs.md",
    "docs/reproducing.md",
    "docs/processes.md",
)


def code_path(command: Command) -> tuple[str, ...] | None:
    """What decides a `hiso-run` training command's code path: its flags, config group choices
    (with their values) and the fields it overrides (without their values). None for any other
    command."""
    words = shlex.split(command.text)
    if command.program != "hiso-run" or any(word in INFO_FLAGS for word in words):
        return None
    groups = config_groups()
    key = []
    for word in words[words.index("hiso-run") + 1 :]:
        name, is_override, _ = word.partition("=")
        if not is_override or name.lstrip("+~") in groups or name.startswith("-"):
            key.append(word)
        else:
            key.append(f"{name}=*")
    return tuple(sorted(key))


def plan(blocks: list[list[Command]]) -> dict[Command, Command]:
    """Each training command whose code path an earlier command (in the README's order, not
    skipped) already runs, and each `python` script run written twice, mapped to that earlier
    command."""
    first: dict[tuple[str, ...], Command] = {}
    shared: dict[Command, Command] = {}
    for command in (c for block in blocks for c in block if not c.skip):
        key = code_path(command)
        if key is None and command.program == "python":
            key = ("python", command.text)
        if key is None:
            continue
        if key in first:
            shared[command] = first[key]
        else:
            first[key] = command
    return shared


def one_job_per_code_path(text: str) -> str:
    """A `-m` sweep's command with each swept field (not a config group) cut to its first value:
    the values of one field take one code path, so the sweep still runs every group choice, as
    its own job, through the launcher; when that leaves one job, the first swept field keeps two
    values, so that the launcher still runs two."""
    words = shlex.split(text)
    if "-m" not in words and "--multirun" not in words:
        return text
    groups = config_groups()
    swept = [
        i
        for i, word in enumerate(words)
        if "," in word.partition("=")[2] and not word.startswith("-")
    ]
    fields = [i for i in swept if words[i].partition("=")[0].lstrip("+~") not in groups]
    keep = {i: 1 for i in fields}
    if fields and len(fields) == len(swept):  # no group choice is swept
        keep[fields[0]] = 2
    for i, count in keep.items():
        name, _, value = words[i].partition("=")
        words[i] = f"{name}={','.join(value.split(',')[:count])}"
    return shlex.join(words)


def config_groups() -> set[str]:
    return {p.name for p in (ROOT / "conf").iterdir() if p.is_dir()} | {"hydra/launcher"}


def shortened(command: Command) -> tuple[str, ...]:
    """SHORT, less the validation size for a command that gives its own data files (a few
    examples may hold fewer than SHORT's validation examples)."""
    if "dataset.data_files." in command.text:
        return tuple(o for o in SHORT if not o.startswith("dataset.validation_size="))
    return SHORT


def check_form(command: Command, compose: bool) -> str | None:
    """The command line the check runs for `command`, or None when it runs nothing."""
    words = shlex.split(command.text)
    info = any(word in INFO_FLAGS for word in words)
    if command.program == "hiso-run" and not info:
        if compose:
            return f"{command.text} --cfg job"
        if command.skip:
            return None
        return f"{one_job_per_code_path(command.text)} {' '.join(shortened(command))}"
    if command.skip or (compose and command.program in RUNS and command.program != "hiso-run"):
        return None
    if command.program == "make" and words[1:2] == ["run"]:
        given = re.search(r"""\bARGS=(["'])(.*?)\1""", command.text)
        args = " ".join([given[2] if given else "", *SHORT]).strip()
        rest = command.text.replace(given[0], "") if given else command.text
        return f'{rest.rstrip()} ARGS="{args}"'
    if command.program == "python" and "scripts/reproduce.py" in words:
        return f"{command.text} --rounds 2 --search-rounds 2 {' '.join(SHORT[1:])}"
    return command.text


def scratch_copy(root: Path, into: Path) -> None:
    """The checkout's tracked and untracked-but-not-ignored files (modification times kept, so
    make's targets stay as up to date as they are), .venv linked to this interpreter's
    environment and .cache to the checkout's."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = root / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    (into / ".venv").symlink_to(sys.prefix)
    if (root / ".cache").exists():
        (into / ".cache").symlink_to(root / ".cache")


def hiso_run_here(line: str, cwd: Path) -> tuple[int, str]:
    """`hiso-run ...` called in this process (its imports paid once for every command), in `cwd`:
    (exit code, stdout and stderr)."""
    from hydra.core.global_hydra import GlobalHydra

    from hiso.cli import main as hiso_run

    output = io.StringIO()
    saved = sys.argv, os.getcwd()
    code: int | str | None = 0
    try:
        sys.argv = ["hiso-run", *shlex.split(line)[1:]]
        os.chdir(cwd)
        with redirect_stdout(output), redirect_stderr(output):
            hiso_run()
    except SystemExit as stop:
        code = stop.code
    finally:
        sys.argv = saved[0]
        os.chdir(saved[1])
        GlobalHydra.instance().clear()
    return (code if isinstance(code, int) else int(code is not None)), output.getvalue()


def run(line: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    return result.returncode, result.stdout + result.stderr


def check(pages: list[Path], root: Path, compose: bool, jobs: int = 1) -> int:
    """Run every block's commands of every page (see the module's rules), `jobs` blocks at once
    (each in its own copy of the checkout); print one line per command, in the pages' order, and
    the output of each that failed; return the number of failures."""
    texts = {label(page, root): page.read_text() for page in pages}
    failures = 0
    blocks = [(name, block) for name, text in texts.items() for block in bash_blocks(text)]
    commands = {c.text for _, block in blocks for c in block}
    for name, text in texts.items():
        for number, quoted in quoted_make_commands(text):
            if quoted not in commands:
                failures += 1
                print(f"{name}:{number}  FAILED  `{quoted}` is in no ```bash block: none runs it")
    shared = {} if compose else plan([block for _, block in blocks])
    where = {command: f"{name}:{command.line}" for name, block in blocks for command in block}
    work = functools.partial(check_block, root=root, compose=compose, shared=shared, where=where)
    with ProcessPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
        each = pool.map if pool else map
        results = each(work, [name for name, _ in blocks], [block for _, block in blocks])
        for failed, output in results:  # in the pages' order, each as soon as it is done
            print(output, end="", flush=True)
            failures += failed
    print(f"{failures} failed" if failures else "every command passed")
    return failures


def check_block(
    name: str,
    block: list[Command],
    root: Path,
    compose: bool,
    shared: dict[Command, Command],
    where: dict[Command, str],
) -> tuple[int, str]:
    """One block's commands in order, in a fresh copy of the checkout: (failures, what it
    printed)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env['PATH']}"
    failures, output = 0, io.StringIO()
    with tempfile.TemporaryDirectory(prefix="readme-") as scratch, redirect_stdout(output):
        cwd = Path(scratch)
        scratch_copy(root, cwd)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [scratch, os.environ.get("PYTHONPATH")]))
        for command in block:
            runs = shared.get(command)
            if runs is not None and command.program != "hiso-run":
                print(f"{name}:{command.line}  shares the run of {where[runs]}  | {command.text}")
            elif runs is not None:  # composed only: the code path of an earlier run
                failures += check_command(name, command, True, cwd, env, where[runs])
            else:
                failures += check_command(name, command, compose, cwd, env)
    return failures, output.getvalue()


def label(page: Path, root: Path) -> str:
    """The page as the check names it: relative to the checkout when inside it."""
    page, root = page.resolve(), root.resolve()
    return str(page.relative_to(root)) if page.is_relative_to(root) else page.name


def check_command(
    page: str,
    command: Command,
    compose: bool,
    cwd: Path,
    env: dict,
    runs: str | None = None,
) -> int:
    """Check one command of `page` (`runs`: where the earlier command is whose real run covers
    its code path)."""
    where = f"{page}:{command.line}"
    line = check_form(command, compose)
    if line is None:
        why = f"not run: {command.skip}" if command.skip else "left to the full check"
        print(f"{where}  {why}  | {command.text}")
        return 0
    if command.program == "make" and run("make -q setup", cwd, env)[0] != 0:
        print(f"{where}  FAILED  make setup is not up to date (make would rebuild .venv): run it")
        return 1
    began = time.monotonic()
    here = compose and command.program == "hiso-run"
    code, output = hiso_run_here(line, cwd) if here else run(line, cwd, env)
    seconds = time.monotonic() - began
    if code != 0:
        print(f"{where}  FAILED (exit {code}, {seconds:.0f} s)  | {line}")
        print("\n".join("    " + row for row in output.strip().splitlines()[-20:]))
        return 1
    did = "composed" if line.endswith("--cfg job") else "ran"
    did += f"; not run: {command.skip}" if command.skip else ""
    did += f"; shares the run of {runs}" if runs else ""
    print(f"{where}  {did} ({seconds:.0f} s)  | {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", action="store_true", help="hiso-run --cfg job only")
    parser.add_argument("pages", nargs="*", type=Path, help="the pages to check (default: PAGES)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to copy")
    parser.add_argument(
        "--jobs", type=int, default=2, help="blocks run at once, each in its own copy (default 2)"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: at least 1")
    pages = args.pages or [args.root / page for page in PAGES]
    return 1 if check(pages, args.root, args.compose, args.jobs) else 0


if __name__ == "__main__":
    sys.exit(main())
