"""Shared pytest fixtures, one section per area."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ---- offline: set before datasets/transformers are imported, so no hub lookup ever retries ----
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# ---- tiny language models (built by tests/lm_fixtures.py) ----
@pytest.fixture(scope="session", params=["opt", "llama"])
def tiny_lm(request: pytest.FixtureRequest):
    """(model, tokenizer) of a tiny random OPT or LLaMA; tests must not modify the model."""
    import lm_fixtures

    return lm_fixtures.tiny_opt() if request.param == "opt" else lm_fixtures.tiny_llama()


@pytest.fixture(scope="session", params=["opt", "llama"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny OPT or LLaMA checkpoint directory (`model.path=` loads it)."""
    import lm_fixtures

    build = lm_fixtures.tiny_opt if request.param == "opt" else lm_fixtures.tiny_llama
    model, tokenizer = build()
    directory = tmp_path_factory.mktemp(f"tiny-{request.param}")
    return lm_fixtures.save_checkpoint(model, tokenizer, directory)


# ---- bad input: a test that asks for no_model fails where a model is built ----
@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built for a bad input")

    monkeypatch.setattr("hiso.models.build_model", fail)


# ---- torch: one intra-op thread; the tiny test models run faster without thread hand-offs ----
def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)


# ---- tests marked cuda (tests/configs.py DEVICES) skip where torch sees no CUDA device ----
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make gpu-check runs it on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
