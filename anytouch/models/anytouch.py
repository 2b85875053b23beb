"""The whole AnyTouch model (stage 2, docs/original/checkpoints.md#stage-2-file,
docs/original/recipe.md#stage-2-alignment-and-matching): touch branch (encoder + MAE decoder), CLIP vision tower with
LoRA, frozen CLIP text tower, a learnable ``logit_scale`` and the cross-sensor matching head.

A model built with ``towers=False`` is the stage-1 model behind the same interface: ``encode_touch`` and
``mae_loss`` work, ``encode_vision`` / ``encode_text`` raise.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..sensors import SensorLike
from ..tokenizer import tokenize
from .config import ArchConfig
from .mae import TouchMAE
from .towers import TextTower, VisionTower

__all__ = ["AnyTouchModel", "as_touch_mae"]


class AnyTouchModel(nn.Module):
    """Touch, vision and text encoders sharing one ``projection_dim`` space. Features are returned unnormalised."""

    def __init__(self, arch: ArchConfig, towers: bool = True, lora: bool = True):
        super().__init__()
        self.arch = arch
        self.touch = TouchMAE(arch)
        self.vision: Optional[VisionTower] = None
        self.text: Optional[TextTower] = None
        self.logit_scale: Optional[nn.Parameter] = None
        self.cross_head: Optional[nn.Linear] = None
        if towers:
            rank = arch.lora_rank if lora else 0
            self.vision = VisionTower(arch.vision, arch.projection_dim, rank, arch.lora_alpha)
            self.text = TextTower(arch.text, arch.projection_dim)
            self.text.requires_grad_(False)  # frozen in stage 2 (docs/original/recipe.md#stage-2-what-trains; kept out
            # of the optimiser)
            self.logit_scale = nn.Parameter(torch.tensor(float(arch.logit_scale_init)))
            self.cross_head = nn.Linear(arch.projection_dim, 1)
            nn.init.zeros_(self.cross_head.bias)

    @property
    def has_towers(self) -> bool:
        return self.vision is not None

    @property
    def encoder(self):
        """The touch encoder (:class:`~anytouch.models.touch_encoder.TouchEncoder`)."""
        return self.touch.encoder

    def _need_towers(self, what: str) -> None:
        if not self.has_towers:
            raise RuntimeError(
                f"{what} needs the CLIP vision/text towers, but this model was loaded from a stage-1 (MAE-only) "
                "checkpoint; load a stage-2 checkpoint or a CLIP-initialised model instead"
            )

    def encode_touch(self, touch: torch.Tensor, sensor: SensorLike, pooling: str = "cls") -> torch.Tensor:
        """(B,3,H,W) or (B,T,3,H,W) ImageNet-normalised touch -> (B, P)."""
        return self.touch.encoder(touch, sensor, pooling)

    def encode_vision(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) CLIP-normalised camera images -> (B, P)."""
        self._need_towers("encode_vision")
        return self.vision(pixels)

    def encode_text(self, input_ids: Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor], str, Sequence[str]],
                    attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Token ids (B, 77) (+ mask), the ``(ids, mask)`` pair :func:`anytouch.tokenize` returns, or raw strings
        tokenised offline with CLIP's BPE -> (B, P).

        Raises ValueError when an id is outside the text vocabulary ``[0, vocab_size)``; checked in eval mode only
        (the check costs a host sync; training text is checked where it is loaded, ``anytouch.data.text``).
        """
        self._need_towers("encode_text")
        if isinstance(input_ids, tuple) and input_ids and all(isinstance(t, torch.Tensor) for t in input_ids):
            if len(input_ids) != 2 or attention_mask is not None:
                raise TypeError("encode_text takes tokenize()'s (input_ids, attention_mask) pair alone, or the two "
                                f"tensors as separate arguments; got a tuple of {len(input_ids)} tensors"
                                + (" and an attention_mask" if attention_mask is not None else ""))
            device = self.text.token_embed.weight.device
            input_ids, attention_mask = (t.to(device) for t in input_ids)
        elif isinstance(input_ids, (str, list, tuple)):
            input_ids, attention_mask = tokenize(input_ids, context_length=self.arch.text.context_length)
            device = self.text.token_embed.weight.device
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        vocab = self.text.token_embed.num_embeddings
        if not self.training and bool(((input_ids < 0) | (input_ids >= vocab)).any()):
            # nn.Embedding would raise a bare IndexError (or a device assert on CUDA)
            raise ValueError(
                f"token ids out of range: max id {int(input_ids.max())}, min id {int(input_ids.min())}, but this "
                f"model's text vocabulary size is {vocab} (ids 0..{vocab - 1}); tokenise with anytouch.tokenize"
            )
        return self.text(input_ids, attention_mask)

    def mae_loss(self, touch: torch.Tensor, sensor: SensorLike, noise: Optional[torch.Tensor] = None,
                 mask_ratio: float = 0.75) -> Dict[str, torch.Tensor]:
        """Stage-1 objective (docs/original/architecture.md#mae-losses) on (B,3,H,W) images or (B,4,3,H,W) clips.
        Returns the TouchMAE dict."""
        return self.touch(touch, sensor, mask_ratio=mask_ratio, noise=noise)

    def set_stage2_trainable(self) -> None:
        """What trains in stage 2 (docs/original/recipe.md#stage-2-what-trains, with the text tower truly frozen): the
        whole touch branch except the fixed decoder positions; in the vision tower the LoRA matrices plus embeddings,
        LayerNorms and projection (the transformer blocks' base weights frozen); ``logit_scale``; the cross-sensor
        head."""
        self._need_towers("set_stage2_trainable")
        self.touch.requires_grad_(True)
        self.text.requires_grad_(False)
        self.vision.requires_grad_(True)
        if self.vision.lora_rank > 0:
            for name, p in self.vision.blocks.named_parameters():
                p.requires_grad_("lora_" in name)
        self.logit_scale.requires_grad_(True)
        self.cross_head.requires_grad_(True)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.touch.encoder.set_grad_checkpointing(enable)
        if self.vision is not None:
            self.vision.set_grad_checkpointing(enable)


def as_touch_mae(model: nn.Module) -> TouchMAE:
    """The TouchMAE (encoder + MAE decoder) of ``model``: a TouchMAE itself or the touch branch of an AnyTouchModel."""
    if isinstance(model, AnyTouchModel):
        return model.touch
    if isinstance(model, TouchMAE):
        return model
    raise TypeError(f"expected an AnyTouchModel or a TouchMAE (the MAE decoder is needed), got {type(model).__name__}")
