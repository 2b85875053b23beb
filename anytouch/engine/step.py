"""The backward / optimizer-step half of a training iteration: mixed precision, gradient accumulation, clipping.

Usage, one micro-batch at a time (``sync`` is True on the last micro-batch of an accumulation window)::

    with stepper.accumulate(sync):
        with stepper.autocast():
            out = model(batch)
        stepper.backward(out["loss"] / window_size)
    if sync:
        grad_norm = stepper.step(lr)
"""
from __future__ import annotations

import contextlib
import math
from typing import Dict, Iterator, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["resolve_precision", "Stepper"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bf16 on CUDA, fp32 on CPU; otherwise ``bf16`` / ``fp16`` / ``fp32`` (half precision needs CUDA)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision not in _DTYPES:
        raise ValueError(f"precision must be one of auto, {', '.join(_DTYPES)}; got {precision!r}")
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(f"precision={precision} needs a CUDA device (running on {device}); use auto or fp32")
    return _DTYPES[precision]


class Stepper:
    """Owns the autocast dtype, the GradScaler (fp16 only) and the optimizer step.

    Args:
        model: the module being trained, possibly wrapped in DistributedDataParallel.
        optimizer: its optimizer.
        device: where the model lives.
        precision: see :func:`resolve_precision`.
        clip_grad: max global grad norm, or None (the norm is computed and returned either way).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 precision: str = "auto", clip_grad: Optional[float] = None):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.dtype = resolve_precision(precision, device)
        self.clip_grad = clip_grad
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    def autocast(self):
        """Mixed-precision context for the forward pass (a no-op in fp32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)

    @contextlib.contextmanager
    def accumulate(self, sync: bool) -> Iterator[None]:
        """Wrap forward + backward of one micro-batch. On non-final micro-batches (``sync=False``) DDP's gradient
        all-reduce is skipped (``no_sync``): gradients accumulate locally and are reduced once, on the last one."""
        if not sync and isinstance(self.model, DistributedDataParallel):
            with self.model.no_sync():
                yield
        else:
            yield

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, lr: float) -> torch.Tensor:
        """Set ``lr`` on every group, unscale, clip, step, update the scaler, zero the gradients.

        Returns the global grad norm before clipping, a 0-d tensor (inf/nan when an fp16 step overflowed and was
        skipped); left on the device so that no host sync is forced here.
        Gradients are set to None, so parameters unused in a window (the idle MAE head) get no AdamW update.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.unscale_(self.optimizer)
        max_norm = self.clip_grad if self.clip_grad is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return norm.detach()

    def state_dict(self) -> Dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: Dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
