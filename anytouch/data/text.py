"""Stage-2 text of AnyTouch (docs/original/data.md#text): the original's pre-tokenised ``.pt`` files, or raw strings.

An original text file ``torch.load``s to a pair ``(input_ids, attention_mask)`` made by the checkpoint's HF
CLIPTokenizer (``padding="max_length", max_length=77, truncation=True``); a raw string goes through
:func:`anytouch.tokenizer.tokenize`, which gives the same ids. Both return long tensors of shape (77,).
A sample without text carries zeros and ``text_flag = 0`` (:func:`empty_text`).
"""
from __future__ import annotations

import os
from typing import Tuple

import torch

from ..tokenizer import CONTEXT_LENGTH, tokenize
from .io import DataError

__all__ = ["load_text_file", "encode_text", "empty_text"]

Text = Tuple[torch.Tensor, torch.Tensor]
VOCAB_SIZE = 49408  # CLIP's BPE vocabulary (every text tower here uses it)


def _as_row(t, path: str, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise DataError(f"text file {path}: {what} is a {type(t).__name__}; expected a tensor", path)
    if t.ndim == 2 and t.shape[0] == 1:  # saved from a batch of one (return_tensors="pt")
        t = t[0]
    if t.ndim != 1 or t.shape[0] != CONTEXT_LENGTH:
        raise DataError(
            f"text file {path}: {what} has shape {tuple(t.shape)}; "
            f"expected ({CONTEXT_LENGTH},) or (1, {CONTEXT_LENGTH})",
            path,
        )
    return t.to(torch.long)


def load_text_file(path: str) -> Text:
    """Load an original pre-tokenised text file -> (input_ids (77,) long, attention_mask (77,) long).

    Accepts a pair / list ``(input_ids, attention_mask)`` or a dict with those two keys.

    Raises:
        DataError: missing, unreadable or wrongly shaped file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"text file not found: {path} (expected a pre-tokenised (input_ids, attention_mask) .pt)", path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types (pickle, zip, weights-only policy); all mean "bad file"
        raise DataError(f"cannot load text file {path}: {type(e).__name__}: {str(e)[:200]}", path) from e
    if isinstance(obj, dict) and {"input_ids", "attention_mask"} <= set(obj):
        ids, mask = obj["input_ids"], obj["attention_mask"]
    elif isinstance(obj, (tuple, list)) and len(obj) == 2:
        ids, mask = obj
    else:
        raise DataError(
            f"text file {path} holds a {type(obj).__name__}; expected a pair (input_ids, attention_mask)", path
        )
    ids = _as_row(ids, path, "input_ids")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= VOCAB_SIZE):
        raise DataError(f"text file {path}: token ids span {int(ids.min())}..{int(ids.max())}; expected CLIP BPE ids "
                        f"in 0..{VOCAB_SIZE - 1}", path)
    return ids, _as_row(mask, path, "attention_mask")


def encode_text(text: str) -> Text:
    """Tokenise a raw string like the original's text files -> (input_ids (77,) long, attention_mask (77,) long)."""
    ids, mask = tokenize(text)
    return ids[0], mask[0]


def empty_text() -> Text:
    """The placeholder for a sample without text: two (77,) long zero tensors."""
    return torch.zeros(CONTEXT_LENGTH, dtype=torch.long), torch.zeros(CONTEXT_LENGTH, dtype=torch.long)
