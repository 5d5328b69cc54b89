"""The README-commands check (scripts/readme_commands.py): every command of the README and of the
docs pages users copy from composes, and the check fails on a broken command, whether it composes
it or runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from configs import import_script_module, load_script

readme = load_script("readme_commands")
readme_blocks = import_script_module("readme_blocks")

FIXTURE = """\
# A readme

Run `make run` or `make nothing`.

```bash
mkdir -p my-conf   # files for the next commands, made as written
hiso-run +experiment=digits \\
    optim.lrr=1e-3   # a typo
hiso-run model=opt-1.3b  # the papers' model  # not run: needs the hub
printf '# not a comment\\n' > note.txt  # not run: prints
make run
```
"""


def test_commands_are_read_with_their_lines_continuations_and_reasons() -> None:
    (block,) = readme_blocks.bash_blocks(FIXTURE)
    assert [(c.line, c.text, c.skip) for c in block] == [
        (6, "mkdir -p my-conf", None),
        (7, "hiso-run +experiment=digits optim.lrr=1e-3", None),
        (9, "hiso-run model=opt-1.3b", "needs the hub"),
        (10, "printf '# not a comment\\n' > note.txt", "prints"),
        (11, "make run", None),
    ]
    assert readme_blocks.quoted_make_commands(FIXTURE) == [(3, "make run"), (3, "make nothing")]


def test_training_runs_are_shortened_and_the_rest_runs_as_written() -> None:
    def form(text: str, compose: bool = False) -> str | None:
        return readme.check_form(readme_blocks.Command(1, text, None), compose)

    short = " ".join(readme.SHORT)
    assert form("hiso-run algo=mezo") == f"hiso-run algo=mezo {short}"
    assert form("hiso-run algo=mezo", compose=True) == "hiso-run algo=mezo --cfg job"
    assert form("hiso-run --help") == "hiso-run --help"
    sweep = form("hiso-run -m algo=hiso,decomfl optim.lr=1e-5,5e-6 'hydra.sweep.subdir=${seed}'")
    assert (
        sweep
        == f"hiso-run -m algo=hiso,decomfl optim.lr=1e-5 'hydra.sweep.subdir=${{seed}}' {short}"
    )
    seeds = form("hiso-run -m +experiment=digits seed=0,1,2,3 hydra.launcher.n_jobs=2")
    assert seeds == f"hiso-run -m +experiment=digits seed=0,1 hydra.launcher.n_jobs=2 {short}"
    own = "hiso-run dataset=custom dataset.data_files.train=a.csv"
    assert form(own) == f"{own} federation.rounds=2 dataset.max_test=16"
    assert form("make run") == f'make run ARGS="{short}"'
    assert form('make run ARGS="algo=decomfl"') == f'make run ARGS="algo=decomfl {short}"'
    assert form("make run", compose=True) is None and form("make lint") == "make lint"
    assert form("python scripts/reproduce.py digits").startswith(
        "python scripts/reproduce.py digits --rounds 2 --search-rounds 2 dataset."
    )
    assert form("mkdir -p x", compose=True) == "mkdir -p x"
    skipped = readme_blocks.Command(1, "hiso-run model=opt-1.3b", "needs the hub")
    assert readme.check_form(skipped, compose=False) is None
    assert readme.check_form(skipped, compose=True) == "hiso-run model=opt-1.3b --cfg job"


def test_every_readme_command_composes(capsys: pytest.CaptureFixture[str]) -> None:
    assert readme.main(["--compose"]) == 0, capsys.readouterr().out
    shown = capsys.readouterr().out
    assert "composed" in shown and "not run: needs the hub" in shown


def test_a_broken_command_fails_the_compose_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "README.md"
    path.write_text(FIXTURE)
    assert readme.main(["--compose", str(path)]) == 1
    shown = capsys.readouterr().out
    assert "README.md:3  FAILED  `make nothing` is in no ```bash block" in shown
    assert "`make run` is in no" not in shown
    assert "README.md:6  ran" in shown
    assert "README.md:7  FAILED (exit 2" in shown and "optim.lrr=" in shown
    assert "README.md:9  composed" in shown  # not run, but its config is still checked
    assert "README.md:10  not run: prints" in shown
    assert "README.md:11  left to the full check" in shown
    assert shown.rstrip().endswith("2 failed")


def test_the_full_check_runs_each_block_in_a_fresh_copy_and_fails_on_an_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "README.md"
    path.write_text(
        "```bash\nprintf made > made.txt\ngrep -q made made.txt\n"
        "hiso-run +experiment=digits logger=none\n```\n\n"
        "```bash\ntest ! -e made.txt   # a fresh copy\ngrep -q made made.txt\n```\n"
    )
    assert readme.main([str(path)]) == 1
    shown = capsys.readouterr().out
    assert "README.md:2  ran" in shown and "README.md:3  ran" in shown
    assert "README.md:4  ran (" in shown and " ".join(readme.SHORT) in shown
    assert "README.md:8  ran" in shown
    assert "README.md:9  FAILED (exit 2" in shown and "1 failed" in shown


def test_every_docs_page_with_bash_blocks_is_checked() -> None:
    root = Path(readme.ROOT)
    with_blocks = {
        str(page.relative_to(root))
        for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
        if readme_blocks.bash_blocks(page.read_text())
    }
    assert with_blocks <= set(readme.PAGES), with_blocks - set(readme.PAGES)


def test_pages_are_checked_together_and_failures_name_the_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # the checkout copied
    (tmp_path / "docs").mkdir()
    first, second = tmp_path / "README.md", tmp_path / "docs" / "more.md"
    first.write_text("See `make lint`.\n\n```bash\ntrue\n```\n")
    second.write_text("```bash\nmake lint  # not run: here\nfalse\n```\n")
    assert readme.main(["--root", str(tmp_path), str(first), str(second)]) == 1
    shown = capsys.readouterr().out
    assert "make lint` is in no" not in shown  # quoted on one page, run on another
    assert "README.md:4  ran" in shown
    assert "docs/more.md:3  FAILED (exit 1" in shown and "1 failed" in shown


def test_commands_that_differ_only_in_values_share_one_real_run() -> None:
    (block,) = readme_blocks.bash_blocks(
        "```bash\n"
        "hiso-run algo=hiso optim.lr=1e-5\n"
        "hiso-run algo=hiso optim.lr=2e-5   # another value: the same code path\n"
        "hiso-run algo=decomfl optim.lr=1e-5   # another group choice\n"
        "hiso-run algo=hiso optim.lr=1e-5 federation.rounds=3   # another field\n"
        "hiso-run -m algo=hiso optim.lr=1e-5,2e-5   # a sweep\n"
        "hiso-run algo=hiso optim.lr=3e-5   # not run: skipped commands never run\n"
        "hiso-run --cfg job algo=hiso optim.lr=4e-5\n"
        "python scripts/reproduce.py digits --stage search\n"
        "python scripts/reproduce.py digits --stage search   # written twice: runs once\n"
        "```\n"
    )
    first, same, other_group, other_field, sweep, skipped, info, script, again = block
    assert readme.plan([block]) == {same: first, again: script}
    assert readme.code_path(first) == ("algo=hiso", "optim.lr=*")
    assert readme.code_path(info) is None
    assert len({readme.code_path(c) for c in (first, other_group, other_field, sweep)}) == 4
    assert skipped not in readme.plan([block])


def test_every_readme_command_is_run_or_says_why_not() -> None:
    """In the full check (CI) each command of every page runs, shares an earlier command's run,
    or carries a `# not run:` reason; a command the check would silently leave out fails here."""
    pages = {
        page: readme_blocks.bash_blocks((readme.ROOT / page).read_text()) for page in readme.PAGES
    }
    shared = readme.plan([block for blocks in pages.values() for block in blocks])
    for page, blocks in pages.items():
        for command in (c for block in blocks for c in block):
            runs = readme.check_form(command, compose=False) is not None
            assert runs or command.skip or command in shared, f"{page}:{command.line} never runs"
