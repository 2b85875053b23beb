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
from typing import Dict, Iterator, Optional

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["resolve_precision", "Stepper", "NonFiniteLossError", "grad_norm"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class NonFiniteLossError(FloatingPointError):
    """Training stopped on a NaN/inf loss or gradient; the checkpoints already written are untouched. ``kind``:
    ``"loss"`` or ``"gradient"``."""

    def __init__(self, message: str, kind: str = "gradient"):
        super().__init__(message)
        self.kind = kind


def grad_norm(params) -> torch.Tensor:
    """The global L2 norm of the gradients of ``params`` (0 when none has one), a 0-d tensor, nothing modified."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: the foreach kernels clip_grad_norm_ uses
        return torch.nn.utils.get_total_norm(grads)
    norms = [torch.linalg.vector_norm(g.detach(), dtype=torch.float32) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))


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

    def step(self, lr: float, losses_finite: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Set ``lr`` on every group, unscale, check, clip, step, update the scaler, zero the gradients.

        Returns the global grad norm before clipping, a 0-d tensor. A non-finite norm skips the step: with fp16 the
        GradScaler skips it and lowers its scale (an overflow is expected there); in bf16 / fp32 it raises
        :class:`NonFiniteLossError` before any parameter or optimizer state changes, so a NaN gradient (which a
        finite loss can still have) never reaches the weights and from there a checkpoint.
        Gradients are set to None, so parameters unused in a window (the idle MAE head) get no AdamW update.
        ``losses_finite`` (a 0-d bool tensor on the device, the window's losses checked there): read in the same
        host synchronisation as the norm -- the step's only one -- and a False skips the step and raises
        :class:`NonFiniteLossError` with ``kind == "loss"``.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.unscale_(self.optimizer)
        # without clipping only measure: clip_grad_norm_(max_norm=inf) would multiply a NaN norm into every gradient
        norm = (torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad) if self.clip_grad is not None
                else grad_norm(self.params))
        checks = [] if losses_finite is None else [losses_finite.reshape(())]
        if not self.scaler.is_enabled():
            checks.append(torch.isfinite(norm).to(checks[0].device) if checks else torch.isfinite(norm))
        ok = torch.stack(checks).tolist() if checks else []  # the one host sync per optimizer step
        if not all(ok):
            self.optimizer.zero_grad(set_to_none=True)  # (clipped NaN gradients are dropped here, never stepped)
            if losses_finite is not None and not ok[0]:
                raise NonFiniteLossError("non-finite loss; the optimizer step was not taken", kind="loss")
            raise NonFiniteLossError(f"non-finite gradient norm ({float(norm)}) with a finite loss; the optimizer step "
                                     f"was not taken")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return norm.detach()

    def state_dict(self) -> Dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: Dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
