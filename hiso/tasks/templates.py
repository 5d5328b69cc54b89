"""Prompt templates with label words, and how prompts become left-padded causal-LM inputs.

Truncation rule: a prompt longer than `max_length` tokens loses tokens from the END of the
template's `truncate` field (the long example text), so the template's tail (question, "It was",
"Answer ...:") stays intact. If the prompt is still too long with that field empty, it keeps its
last `max_length` tokens (after a leading BOS token, which is kept).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from hiso.schema import SetupError

MAX_CUTS = 4  # re-tokenisations allowed when cutting the field shifts token boundaries


class TemplateError(SetupError, ValueError):
    """A template that does not fit the task or whose label words are not usable tokens."""


@dataclass(frozen=True)
class Template:
    """`prompt` is a str.format string over the task's fields; class i is `label_words[i]`
    (empty for generative tasks); `truncate` names the field shortened when too long;
    `words_from` names the config field that set the label words, for messages (empty: they
    are the template's own)."""

    name: str
    prompt: str
    label_words: tuple[str, ...]
    truncate: str
    words_from: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.prompt) if f is not None)

    def render(self, example: Mapping[str, Any]) -> tuple[str, tuple[int, int]]:
        """The prompt text and the character span of the `truncate` field inside it. Field values
        are stripped of surrounding whitespace first (GLUE SST-2 sentences end with a space), as
        MeZO does, and the papers' code for sentences and questions."""
        parts: list[str] = []
        span = (0, 0)
        for literal, name, _, _ in string.Formatter().parse(self.prompt):
            parts.append(literal)
            if name is not None:
                value = str(example[name]).strip()
                start = sum(map(len, parts))
                if name == self.truncate:
                    span = (start, start + len(value))
                parts.append(value)
        return "".join(parts), span


YES_NO = ("Yes", "No")
NO_YES = ("No", "Yes")
TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("sst2", "{sentence} It was", (" bad", " good"), "sentence"),
        Template(
            "review", "Review: {sentence}\nSentiment:", (" negative", " positive"), "sentence"
        ),
        Template(
            "rte",
            '{premise}\nDoes this mean that "{hypothesis}" is true? Yes or No?\n',
            YES_NO,
            "premise",
        ),
        Template(
            "cb",
            'Suppose {premise} Can we infer that "{hypothesis}"? Yes, No, or Maybe?\n',
            (*YES_NO, "Maybe"),
            "premise",
        ),
        Template(
            "boolq",
            "{passage}\nQuestion: {question}?\nIs that correct? Yes or No?\n",
            NO_YES,
            "passage",
        ),
        Template(
            "wic",
            'Does the word "{word}" have the same meaning in these two sentences? Yes, No?\n'
            "{sentence1}\n{sentence2}\n",
            NO_YES,
            "sentence1",
        ),
        Template(
            "wsc",
            '{text}\nIn the previous sentence, does the pronoun "{span2_text}" refer to '
            "{span1_text}? Yes or No?\n",
            NO_YES,
            "text",
        ),
        Template(
            "multirc",
            '{paragraph}\nQuestion: {question}\nI found this answer "{answer}". Is that correct? '
            "Yes or No?\n",
            NO_YES,
            "paragraph",
        ),
        Template(
            "qqp",
            "Question 1: {question1}\nQuestion 2: {question2}\n"
            "Are they semantically equivalent? Yes or No?\n",
            NO_YES,
            "question1",
        ),
        Template(
            "squad",
            "Title: {title}\nContext: {context}\nQuestion: {question}\n"
            "Answer concisely in a few words:",
            (),
            "context",
        ),
    )
}


def label_token_ids(template: Template, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """One distinct token id per label word; raise TemplateError otherwise, naming the word, its
    tokens and, when the word with its leading space added or removed is one token, that word."""
    where = template.words_from or f"template {template.name!r}"
    ids = []
    for word in template.label_words:
        tokens = _tokens(word, tokenizer)
        if len(tokens) != 1:
            pieces = " + ".join(repr(tokenizer.decode([t])) for t in tokens) or "no tokens"
            other = word[1:] if word.startswith(" ") else f" {word}"
            hint = (
                f" ({other!r} is one; a word after a prompt that ends in a word takes its "
                "leading space, as ' good' after 'It was')"
                if other.strip() and len(_tokens(other, tokenizer)) == 1
                else ""
            )
            raise TemplateError(
                f"{where}: label word {word!r} is {len(tokens)} tokens ({pieces}) of this "
                f"model's tokenizer; each label word must be one token{hint}."
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise TemplateError(
            f"{where}: label words {template.label_words} share token ids {ids}; each class "
            "needs its own token."
        )
    return ids


def _tokens(word: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return tokenizer(word, add_special_tokens=False)["input_ids"]


def encode_prompts(
    template: Template,
    examples: Sequence[Mapping[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> list[list[int]]:
    """Token ids of each rendered prompt (with the tokenizer's special tokens), at most
    `max_length` long by the module's truncation rule."""
    texts = [template.render(e)[0] for e in examples]
    encoded = tokenizer(texts)["input_ids"] if texts else []
    return [
        ids if len(ids) <= max_length else _truncated(template, e, tokenizer, max_length)
        for ids, e in zip(encoded, examples, strict=True)
    ]


def _truncated(
    template: Template,
    example: Mapping[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> list[int]:
    example = dict(example)
    for _ in range(MAX_CUTS):
        text, (start, end) = template.render(example)
        enc = tokenizer(text, return_offsets_mapping=True)
        ids = enc["input_ids"]
        excess = len(ids) - max_length
        if excess <= 0:
            return ids
        inside = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if start <= s < e <= end]
        keep = len(inside) - excess
        if keep <= 0:
            break
        cut = enc["offset_mapping"][inside[keep]][0] - start
        example[template.truncate] = str(example[template.truncate]).strip()[:cut]
    example[template.truncate] = ""
    ids = tokenizer(template.render(example)[0])["input_ids"]
    if len(ids) <= max_length:
        return ids
    head = ids[:1] if ids[0] == tokenizer.bos_token_id else []
    return head + ids[len(ids) - max_length + len(head) :]


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask, padded on the left to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)


def lm_logits(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: int
) -> torch.Tensor:
    """Logits of the last `keep` positions, [batch, keep, vocab]. Positions count real tokens
    only (0 for padding), so a left-padded row sees the same positions as when alone."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=keep,
        use_cache=False,
    )
    return out.logits
