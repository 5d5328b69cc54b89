"""The scripts' handling of bad input (hiso-summarize, hiso-plot, hiso-reproduce), as hiso-run's:
one line `PROG: message` on stderr and exit code 2, no traceback, for input that cannot be used
(SetupError: e.g. a summary.json that is not a JSON object) and an output that cannot be written
(OutputError: e.g. `-o` on a read-only file system)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hiso.schema import SetupError
from hiso.tracking.unwritten import OutputError

INPUT_ERROR = 2


@contextmanager
def reported(prog: str) -> Iterator[None]:
    """Within the block, a SetupError or OutputError ends the command with one line and code 2."""
    try:
        yield
    except (SetupError, OutputError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        sys.exit(INPUT_ERROR)
