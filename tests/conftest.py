"""Shared pytest fixtures, one section per area."""

from __future__ import annotations

import os

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


# ---- torch: one intra-op thread; the tiny test models run faster without thread hand-offs ----
def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)
