"""`hiso-run --help` without Hydra's help machinery, which copies its whole config repository
once per config group (seconds); the same text from one composition (tests/test_cli_speed.py
compares the two)."""

from __future__ import annotations

import string
from pathlib import Path

from omegaconf import OmegaConf

from hiso.config import compose_config, conf_dir

# Hydra's own options that change where configs come from: its help handles those
CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")


def config_groups(root: Path, parent: str = "") -> list[str]:
    """One `group: option, option, ...` line per config group under `root` (Hydra's own groups
    left out), sorted as Hydra sorts them."""
    lines = []
    for directory in sorted(p for p in (root / parent).iterdir() if p.is_dir()):
        group = f"{parent}/{directory.name}" if parent else directory.name
        if group == "hydra":
            continue
        options = sorted(p.stem for p in directory.glob("*.yaml"))
        if options:
            lines.append(f"{group}: {', '.join(options)}")
        lines += config_groups(root, group)
    return sorted(lines)


def help_text(overrides: list[str]) -> str:
    """The help page of `hiso-run OVERRIDES --help`: conf/config.yaml's help template with the
    groups, the composed config and the command-line flags."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import get_args_parser

    root = conf_dir()
    template = OmegaConf.load(root / "config.yaml").hydra.help.template
    flags = Hydra.format_args_help(get_args_parser()).replace(
        "--version : Show Hydra's version and exit", "--version : Show hiso-run's version and exit"
    )
    return string.Template(template).substitute(
        FLAGS_HELP=flags,
        APP_CONFIG_GROUPS="".join(line + "\n" for line in config_groups(root)),
        CONFIG=OmegaConf.to_yaml(compose_config(overrides, validated=False)),
    )


def asks_for_help(args: list[str]) -> bool:
    """`--help`/`-h` with no option that changes where configs are read from."""
    return any(a in ("--help", "-h") for a in args) and not any(
        a.split("=", 1)[0] in CONFIG_FLAGS for a in args
    )
