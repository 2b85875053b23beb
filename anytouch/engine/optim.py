"""AdamW with the AnyTouch parameter groups (docs/original/recipe.md#optimiser-and-schedule, timm's
``param_groups_weight_decay``)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ["param_groups_weight_decay", "resolve_lr", "build_adamw"]


def param_groups_weight_decay(model: nn.Module, weight_decay: float) -> List[Dict]:
    """Two groups over the trainable parameters, split by timm's ``param_groups_weight_decay`` rule: no decay for
    every tensor with ``ndim <= 1`` or a name ending in ``.bias`` (LayerNorms, biases, CLS embedding, logit scale);
    ``weight_decay`` for everything else (including sensor tokens, mask token, position embeddings, projections).
    Frozen parameters are left out.

    Unlike timm's, the result always holds both groups, in this order, even when one is empty or ``weight_decay``
    is 0, so an optimizer's state has the same layout whatever the settings (resuming stays possible). Each group
    carries ``names`` (parameter names, for inspection; ignored by the optimizer).
    """
    from timm.optim import param_groups_weight_decay as timm_groups  # timm.optim takes seconds to import

    # timm puts everything in one group when weight_decay is 0: split with a non-zero value, keep only membership
    exempt = {id(p) for g in timm_groups(model, weight_decay=1.0) if g["weight_decay"] == 0.0 for p in g["params"]}
    no_decay = {"params": [], "names": [], "weight_decay": 0.0}
    decay = {"params": [], "names": [], "weight_decay": weight_decay}
    for name, p in model.named_parameters():
        if p.requires_grad:
            group = no_decay if id(p) in exempt else decay
            group["params"].append(p)
            group["names"].append(name)
    return [no_decay, decay]


def resolve_lr(lr: Optional[float], blr: float, eff_batch: int) -> float:
    """The absolute learning rate: ``lr`` if given, else ``blr · eff_batch / 256`` (the MAE rule,
    docs/original/recipe.md#commands-and-hyper-parameters)."""
    if lr is not None:
        return float(lr)
    return blr * eff_batch / 256


def build_adamw(model: nn.Module, lr: float, weight_decay: float, betas: Sequence[float] = (0.9, 0.99),
                eps: float = 1e-8) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over :func:`param_groups_weight_decay`. Uses the fused kernel when all parameters are
    on CUDA."""
    groups = param_groups_weight_decay(model, weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError("the model has no trainable parameters")
    fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=fused or None)
