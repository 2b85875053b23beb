"""Offline CLIP BPE tokenisation (the vocabulary open_clip ships), padded like the Hugging Face CLIP tokenizer.

The original AnyTouch text files hold ``(input_ids, attention_mask)`` made by the checkpoint's HF CLIPTokenizer
with ``padding="max_length", max_length=77, truncation=True``: ``<|startoftext|>`` + BPE ids + ``<|endoftext|>``,
padded with the pad token (``<|endoftext|>`` = 49407 for the DataComp/OpenAI CLIP tokenizers), mask 1 on real
tokens. :func:`tokenize` reproduces that without any network access.
"""
from __future__ import annotations

from functools import lru_cache
from typing import List, Sequence, Tuple, Union

import torch

SOT_ID = 49406
EOT_ID = 49407
CONTEXT_LENGTH = 77

__all__ = ["tokenize", "SOT_ID", "EOT_ID", "CONTEXT_LENGTH"]


@lru_cache(maxsize=1)
def _bpe():
    """open_clip's SimpleTokenizer and its shipped BPE vocabulary (the first call imports open_clip: ~seconds)."""
    try:
        import open_clip  # heavy (imports timm and every model definition): only when text is tokenised
    except ImportError as e:
        raise ImportError("text tokenisation needs open_clip_torch (pip install open_clip_torch)") from e
    return open_clip.SimpleTokenizer()


def tokenize(
    texts: Union[str, Sequence[str]],
    context_length: int = CONTEXT_LENGTH,
    pad_id: int = EOT_ID,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Tokenise strings -> (input_ids (N, context_length) long, attention_mask (N, context_length) long)."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError("tokenize expects a string or a list of strings")
    bpe = _bpe()
    ids = torch.full((len(texts), context_length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(texts), context_length), dtype=torch.long)
    for i, text in enumerate(texts):
        toks: List[int] = [SOT_ID] + bpe.encode(text)[: context_length - 2] + [EOT_ID]
        ids[i, : len(toks)] = torch.tensor(toks)
        mask[i, : len(toks)] = 1
    return ids, mask
