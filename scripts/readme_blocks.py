"""The commands of a markdown page as scripts/readme_commands.py reads them: each ```bash block's
commands in order (continuation lines joined, a trailing `# not run: REASON` kept as the reason),
and the `make ...` commands quoted in the page's text."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

NOT_RUN = "# not run:"


@dataclass(frozen=True)
class Command:
    line: int  # where it starts in the README
    text: str  # as written, continuation lines joined, without its trailing comment
    skip: str | None  # the reason after `# not run:`

    @property
    def program(self) -> str:
        """The program it calls, after any leading NAME=value assignments."""
        words = shlex.split(self.text)
        return next((w for w in words if not re.match(r"[A-Za-z_]\w*=", w)), "")


def split_comment(line: str) -> tuple[str, str]:
    """(code, trailing comment) of one shell line; a `#` inside quotes or a word is code."""
    quote = None
    escaped = False
    for i, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
    return line.rstrip(), ""


def bash_blocks(readme: str) -> list[list[Command]]:
    """The commands of every ```bash block, in order."""
    blocks: list[list[Command]] = []
    inside = False
    pending: list[str] = []
    start = 0
    for number, line in enumerate(readme.splitlines(), 1):
        if not inside:
            if line.strip() == "```bash":
                inside, pending = True, []
                blocks.append([])
            continue
        if line.strip() == "```":
            inside = False
            continue
        code, comment = split_comment(line)
        if not pending and not code.strip():
            continue
        if not pending:
            start = number
        if code.endswith("\\"):
            pending.append(code[:-1].strip())
            continue
        text = " ".join([*pending, code.strip()]).strip()
        pending = []
        skip = comment.split(NOT_RUN, 1)[1].strip() if NOT_RUN in comment else None
        blocks[-1].append(Command(start, text, skip))
    return blocks


def quoted_make_commands(readme: str) -> list[tuple[int, str]]:
    """`make ...` in inline code outside the code blocks: (line, command)."""
    found, fenced = [], False
    for number, line in enumerate(readme.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            found += [(number, text) for text in re.findall(r"`(make [^`]*)`", line)]
    return found
