"""SQuAD as a generative task: next-token loss on the first gold answer, greedy generation and
SQuAD token F1 (best over the gold answers) at evaluation."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from hiso.tasks.base import Batch, HeldOut, Task
from hiso.tasks.templates import Template, encode_prompts, left_pad, lm_logits

IGNORE = -100
ANSWER_END = "\n"  # an answer is trained as " <answer>\n"; generation stops at the newline
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and the articles a/an/the, collapse whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def squad_f1(prediction: str, golds: Sequence[str]) -> float:
    """Token F1 of the normalised prediction against its best-matching gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold_text in golds:
        gold = normalize_answer(gold_text).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        same = sum((Counter(pred) & Counter(gold)).values())
        if same:
            precision, recall = same / len(pred), same / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def gold_answers(value: Any) -> list[str]:
    """Gold answers, stripped of surrounding whitespace, from a hub record ({"text": [...]}), a
    list, or a single string (the prompt's fields are stripped by the template)."""
    if isinstance(value, Mapping):
        value = value["text"]
    answers = [value.strip()] if isinstance(value, str) else [str(v).strip() for v in value]
    if not answers:
        raise ValueError("a SQuAD example has no gold answer")
    return answers


class SquadTask(Task):
    """Prompts end with the template's tail; the first gold answer is the training target."""

    def __init__(
        self,
        template: Template,
        tokenizer: PreTrainedTokenizerBase,
        train: Sequence[Mapping[str, Any]],
        heldout: Mapping[HeldOut, Sequence[Mapping[str, Any]]],
        max_length: int,
        eval_batch_size: int,
        generation_tokens: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.eval_batch_size = eval_batch_size
        self.generation_tokens = generation_tokens
        self._train = self._encode(template, train, max_length)
        # each held-out split in order of prompt length, so evaluation batches carry little padding
        self._heldout: dict[HeldOut, tuple[list[tuple[list[int], list[int]]], list[list[str]]]] = {}
        for split, examples in heldout.items():
            if not examples:
                continue
            pairs = self._encode(template, examples, max_length)
            order = np.argsort([len(p) for p, _ in pairs], kind="stable")
            golds = [gold_answers(examples[i]["answers"]) for i in order]
            self._heldout[split] = ([pairs[i] for i in order], golds)
        end = tokenizer(ANSWER_END, add_special_tokens=False)["input_ids"]
        self._stop_ids = [tokenizer.eos_token_id, *(end if len(end) == 1 else [])]

    def _encode(
        self, template: Template, examples: Sequence[Mapping[str, Any]], max_length: int
    ) -> list[tuple[list[int], list[int]]]:
        prompts = encode_prompts(template, examples, self.tokenizer, max_length)
        targets = [" " + gold_answers(e["answers"])[0] + ANSWER_END for e in examples]
        answers = self.tokenizer(targets, add_special_tokens=False)["input_ids"] if targets else []
        return list(zip(prompts, answers, strict=True))

    @property
    def num_train(self) -> int:
        return len(self._train)

    def train_labels(self) -> np.ndarray | None:
        return None

    def heldout_splits(self) -> tuple[HeldOut, ...]:
        return tuple(self._heldout)

    def heldout_size(self, split: HeldOut) -> int:
        return len(self._heldout[split][0])

    def lengths(self, indices: Sequence[int]) -> np.ndarray | None:
        return np.array([len(p) + len(a) for p, a in (self._train[i] for i in indices)])

    def batch(self, indices: Sequence[int], device: torch.device) -> Batch:
        return self._collate([self._train[i] for i in indices], device)

    def _collate(self, pairs: Sequence[tuple[list[int], list[int]]], device: torch.device) -> Batch:
        input_ids, mask = left_pad([p + a for p, a in pairs], self.tokenizer.pad_token_id, device)
        labels = torch.full_like(input_ids, IGNORE)
        for row, (_, answer) in enumerate(pairs):
            labels[row, labels.shape[1] - len(answer) :] = torch.tensor(answer, device=device)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Mean next-token cross-entropy over each example's answer tokens (padding and prompt
        carry label -100). Answers sit at the right end, so only their logits are computed."""
        labels = batch["labels"]
        keep = int((labels != IGNORE).sum(1).max()) + 1
        logits = lm_logits(model, batch["input_ids"], batch["attention_mask"], keep)[:, :-1]
        targets = labels[:, -(keep - 1) :]
        token_loss = F.cross_entropy(
            logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
        )
        return token_loss.sum(1) / (targets != IGNORE).sum(1)

    @torch.no_grad()
    def generate(
        self, model: nn.Module, prompts: Sequence[Sequence[int]], device: torch.device
    ) -> list[str]:
        """Greedy continuations of `prompts`, cut at the first newline."""
        input_ids, mask = left_pad(prompts, self.tokenizer.pad_token_id, device)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=self.generation_tokens,
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            eos_token_id=self._stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(out[:, input_ids.shape[1] :], skip_special_tokens=True)
        return [t.split(ANSWER_END, 1)[0].strip() for t in texts]

    @torch.no_grad()
    def evaluate_examples(
        self, model: nn.Module, device: torch.device, split: HeldOut
    ) -> tuple[dict[str, float], None]:
        examples, all_golds = self._heldout[split]
        loss_sum = f1_sum = 0.0
        for start in range(0, len(examples), self.eval_batch_size):
            pairs = examples[start : start + self.eval_batch_size]
            loss_sum += float(self.loss(model, self._collate(pairs, device)).sum())
            predictions = self.generate(model, [p for p, _ in pairs], device)
            golds = all_golds[start : start + len(pairs)]
            f1_sum += sum(squad_f1(p, g) for p, g in zip(predictions, golds, strict=True))
        n = len(examples)
        return {"loss": loss_sum / n, "accuracy": f1_sum / n, "f1": f1_sum / n}, None
