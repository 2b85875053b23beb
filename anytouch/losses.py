"""Stage-2 objectives of AnyTouch (Feng et al., ICLR 2025): multi-modal alignment and cross-sensor matching.

* :func:`alignment_loss` (docs/original/recipe.md#stage-2-alignment-loss): symmetric InfoNCE (CLIP, Radford et al. 2021)
  between touch, vision and text, each pair restricted to the samples that have both modalities, one learnable
  temperature shared by all pairs. The original does not halve the touch-text term
  (docs/original/defects.md#16-touch-text-loss-not-halved); that is the default here, ``halve_touch_text`` halves it
  like the other two.
* :func:`matching_loss` (docs/original/recipe.md#stage-2-cross-sensor-matching): a linear head on the element-wise
  product of L2-normalised features says whether two touches come from the same object.

Options the original does not have (off by default): contrastive negatives gathered from every rank with gradient
(open_clip's ``gather_with_grad`` + ``local_loss``), and a clamp of ``logit_scale`` (open_clip clamps at ln 100).
Every function returns a dict: ``loss`` plus named parts for logging. :class:`Stage2Objective` combines them (with
the MAE loss) into the training objective of stage 2.
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn as nn
import torch.nn.functional as F

from anytouch.engine.dist import side_group

__all__ = ["info_nce", "alignment_loss", "matching_logits", "matching_loss", "gather_batch", "Stage2Objective"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_batch(x: torch.Tensor, flags: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """All-gather per-sample rows from every rank, keeping the gradient to every rank's rows.

    x: (B, F) features, B equal on every rank; flags: (B, K) integer per-sample flags (no gradient).
    Returns ``(x of all ranks in rank order (W·B, F), flags (W·B, K), index of this rank's first row)``.
    A collective: every rank must call it at the same point.
    """
    # a group of its own: the gather's backward runs inside autograd, interleaved with DDP's gradient all-reduces
    # in an order that can differ between ranks (a rank with no camera image finds the vision tower unused and
    # marks its gradients ready early); on DDP's group an all-reduce could then meet an all-gather
    group = side_group("loss_gather")
    world = dist.get_world_size(group)
    all_flags = [torch.empty_like(flags) for _ in range(world)]
    dist.all_gather(all_flags, flags.contiguous(), group=group)
    with warnings.catch_warnings():
        # the suggested replacement lives in the private torch.distributed._functional_collectives, whose names
        # keep changing between releases; this public function is stable and its backward works on gloo and NCCL
        warnings.simplefilter("ignore", FutureWarning)
        parts = dist_fn.all_gather(x, group=group)  # autograd-aware: backward sums each rank's row gradients
    return torch.cat(parts), torch.cat(all_flags), dist.get_rank(group) * x.shape[0]


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor,
             rows: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """Symmetric InfoNCE between paired rows: ``(CE(s·a bᵀ, diag) + CE(s·b aᵀ, diag)) / 2``, mean over pairs.

    a, b: (n, P) L2-normalised features, row i of ``a`` pairs with row i of ``b``; scale: 0-d exp(logit_scale).
    rows: score only these pairs (indices into 0..n-1) against all n; the result is the sum of their cross
    entropies divided by 2n (so that summing over disjoint ``rows`` gives the full loss). Returns None when n = 0.
    """
    n = a.shape[0]
    if n == 0:
        return None
    rows = torch.arange(n, device=a.device) if rows is None else rows
    # reduction "sum" stays connected to ``a`` / ``b`` even when ``rows`` is empty
    ce = (F.cross_entropy(scale * a[rows] @ b.T, rows, reduction="sum")
          + F.cross_entropy(scale * b[rows] @ a.T, rows, reduction="sum"))
    return ce / (2 * n)


def _scatter_rows(x: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
    """(|flag|, P) features of the flagged rows -> (B, P) with zeros elsewhere (differentiable)."""
    idx = flag.nonzero().squeeze(1)
    return x.new_zeros(flag.shape[0], x.shape[1]).index_copy(0, idx, x)


def alignment_loss(
    touch: torch.Tensor,
    vision: Optional[torch.Tensor],
    text: Optional[torch.Tensor],
    vision_flag: torch.Tensor,
    text_flag: torch.Tensor,
    logit_scale: torch.Tensor,
    alpha_vt: float = 1.0,
    alpha_vl: float = 0.2,
    alpha_lt: float = 1.0,
    halve_touch_text: bool = False,
    gather: bool = False,
    max_logit_scale: Optional[float] = None,
) -> Dict[str, torch.Tensor]:
    """The alignment loss of docs/original/recipe.md#stage-2-alignment-loss.

    Args:
        touch: (B, P) touch features of the whole batch (not normalised).
        vision: (|V|, P) features of the rows with ``vision_flag == 1``, in batch order, or None if there are none.
        text: (|T|, P) features of the rows with ``text_flag == 1``, in batch order, or None if there are none.
        vision_flag, text_flag: (B,) 0/1.
        logit_scale: the learnable log-scale (0-d); logits are multiplied by exp(logit_scale).
        alpha_vt, alpha_vl, alpha_lt: weights of the touch-vision, vision-text and touch-text terms (paper recipe
            1.0 / 0.2 / 1.0).
        halve_touch_text: halve the touch-text term like the others (the original does not,
        docs/original/defects.md#16-touch-text-loss-not-halved).
        gather: contrastive negatives from every rank, with gradient (one autograd all-gather per call; every rank
            must call it at the same step). Each rank then returns world_size x its share of the loss: the mean over
            ranks, which DDP's gradient averaging optimises, equals the loss of the concatenated batch.
        max_logit_scale: clamp ``logit_scale`` at this value before exp (e.g. ln 100 = 4.6052); None = no clamp.

    Returns:
        ``loss`` (0-d; 0 when no term exists), ``loss_touch_vision``, ``loss_vision_text``, ``loss_touch_text``
        (each the symmetric InfoNCE, detached, present only when the term exists) and ``logit_scale`` (detached).
    """
    b = touch.shape[0]
    vf, tf = vision_flag.bool().reshape(-1), text_flag.bool().reshape(-1)
    if vf.shape != (b,) or tf.shape != (b,):
        raise ValueError(f"vision_flag and text_flag must have shape ({b},), got {tuple(vision_flag.shape)} and "
                         f"{tuple(text_flag.shape)}")
    nv, nt = int(vf.sum()), int(tf.sum())
    empty = touch.new_zeros(0, touch.shape[1])
    vision = empty if vision is None else vision
    text = empty if text is None else text
    if vision.shape[0] != nv or text.shape[0] != nt:
        raise ValueError(f"got {vision.shape[0]} vision / {text.shape[0]} text features for {nv} / {nt} flagged "
                         f"samples; pass the features of the flagged rows only, in batch order")
    ls = logit_scale if max_logit_scale is None else logit_scale.clamp(max=max_logit_scale)
    scale = ls.exp()
    share = 1.0
    mine = torch.ones(b, dtype=torch.bool, device=touch.device)  # the samples whose pairs this rank scores
    if gather and _distributed():
        # one collective for the three modalities: (B, 3P), zero rows where a sample lacks one
        p = touch.shape[1]
        feats = torch.cat([touch, _scatter_rows(vision, vf), _scatter_rows(text, tf)], dim=1)
        feats, flags, start = gather_batch(feats, torch.stack([vf, tf], dim=1).long())
        touch, vision_all, text_all = feats.split(p, dim=1)
        vf, tf = flags[:, 0].bool(), flags[:, 1].bool()
        vision, text = vision_all[vf], text_all[tf]
        mine = torch.zeros_like(vf)
        mine[start: start + b] = True
        # each rank scores its own pairs against every rank's; DDP averages the ranks' gradients, so each rank
        # returns world_size x its share: the mean over ranks is the loss of the concatenated batch
        share = float(dist.get_world_size())
    touch, vision, text = (F.normalize(x, dim=-1) for x in (touch, vision, text))
    # docs/original/recipe.md#stage-2-alignment-loss step 2: inside the text subset keep the rows that also have vision,
    # and vice versa; both keep batch order, so they index the same samples
    text_vt, vision_vt = text[vf[tf]], vision[tf[vf]]
    pairs = {  # name: (features, paired features, weight, samples of the pairs)
        "touch_vision": (touch[vf], vision, alpha_vt, vf),
        "vision_text": (text_vt, vision_vt, alpha_vl, vf & tf),
        "touch_text": (touch[tf], text, alpha_lt * (1.0 if halve_touch_text else 2.0), tf),
    }
    out: Dict[str, torch.Tensor] = {}
    loss = touch.new_zeros(())
    for name, (x, y, weight, members) in pairs.items():
        term = info_nce(x, y, scale, rows=mine[members].nonzero().squeeze(1))
        if term is not None:  # absent terms contribute 0
            term = share * term
            out[f"loss_{name}"] = term.detach()
            loss = loss + weight * term
    out["loss"] = loss
    out["logit_scale"] = ls.detach()
    return out


def matching_logits(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                    head: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """The matching head's logits ``(head(â⊙p̂), head(â⊙n̂))``, each (B,), for (B, P) unnormalised features.

    Since ``Σ|â_i p̂_i| <= 1``, a logit is at most ``max|w|`` away from the head's bias: the BCE can only leave
    ln 2 once the head's weights have grown far beyond their initial ~1/sqrt(P).
    """
    a, p, n = (F.normalize(x, dim=-1) for x in (anchor, positive, negative))
    return head(a * p).squeeze(-1), head(a * n).squeeze(-1)


def matching_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, head: nn.Module,
                  cross_alpha: float = 1.0) -> Dict[str, torch.Tensor]:
    """Cross-sensor matching (docs/original/recipe.md#stage-2-cross-sensor-matching):
    ``cross_alpha · (BCE(head(â⊙p̂), 1) + BCE(head(â⊙n̂), 0))``.

    anchor, positive, negative: (B, P) touch features (not normalised); head: Linear(P, 1).
    Returns ``loss``, ``loss_pos``, ``loss_neg`` (unweighted BCE means, detached) and ``acc`` (fraction of the 2B
    pairs classified correctly at logit 0, detached).
    """
    logit_pos, logit_neg = matching_logits(anchor, positive, negative, head)
    loss_pos = F.binary_cross_entropy_with_logits(logit_pos, torch.ones_like(logit_pos))
    loss_neg = F.binary_cross_entropy_with_logits(logit_neg, torch.zeros_like(logit_neg))
    acc = torch.cat([logit_pos > 0, logit_neg <= 0]).float().mean()
    return {"loss": cross_alpha * (loss_pos + loss_neg), "loss_pos": loss_pos.detach(),
            "loss_neg": loss_neg.detach(), "acc": acc.detach()}


class Stage2Objective(nn.Module):
    """The stage-2 objective around an :class:`~anytouch.models.AnyTouchModel`
    (docs/original/recipe.md#stage-2-alignment-loss, #stage-2-cross-sensor-matching).

    ``forward(batch) -> dict`` with ``loss`` and named parts. An alignment batch (``touch``, ``sensor``, ``vision``,
    ``vision_flag``, ``text_ids``, ``text_mask``, ``text_flag``, optional ``noise`` (B, N) for the MAE mask) gives
    align + MAE: the unmasked touch feature (clips: frames 0-2), and a second, masked pass of the same touch batch
    with the same sensor ids for the MAE (clips: all 4 frames, the 4th as the prediction target). A cross-sensor
    batch (``anchor``, ``positive``, ``negative`` and their ``*_sensor`` ids) gives the matching loss only.

    Training wraps this module, not the model, in DDP: every forward that produces a gradient must run inside DDP's
    forward for its unused-parameter bookkeeping.

    ``parts`` declares, per batch kind, the scalar entries a forward returns (``loss`` first); the trainer logs
    exactly these and refuses an undeclared one, so a new term cannot go missing from the logs.
    """

    parts = {
        "align": ("loss", "loss_align", "loss_mae", "loss_touch_vision", "loss_vision_text", "loss_touch_text",
                  "logit_scale"),
        "cross": ("loss", "loss_pos", "loss_neg", "acc"),
    }

    def __init__(self, model: nn.Module, alpha_vt: float = 1.0, alpha_vl: float = 0.2, alpha_lt: float = 1.0,
                 halve_touch_text: bool = False, cross_alpha: float = 1.0, gather: bool = False,
                 max_logit_scale: Optional[float] = None, mask_ratio: float = 0.75):
        super().__init__()
        self.model = model
        self.align_options = dict(alpha_vt=alpha_vt, alpha_vl=alpha_vl, alpha_lt=alpha_lt,
                                  halve_touch_text=halve_touch_text, gather=gather, max_logit_scale=max_logit_scale)
        self.cross_alpha, self.mask_ratio = cross_alpha, mask_ratio

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return self.cross(batch) if "anchor" in batch else self.align(batch)

    def align(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        m = self.model
        touch, sensor = batch["touch"], batch["sensor"]
        vf, tf = batch["vision_flag"].bool(), batch["text_flag"].bool()
        touch_feat = m.encode_touch(touch, sensor)  # (B, P); clips use frames t-3..t-1
        # (docs/original/recipe.md#stage-2-alignment-loss)
        vision = m.encode_vision(batch["vision"][vf]) if vf.any() else None
        with torch.no_grad():  # the text tower is frozen (docs/original/recipe.md#stage-2-what-trains)
            text = m.encode_text(batch["text_ids"][tf], batch["text_mask"][tf]) if tf.any() else None
        align = alignment_loss(touch_feat, vision, text, vf, tf, m.logit_scale, **self.align_options)
        mae = m.mae_loss(touch, sensor, noise=batch.get("noise"), mask_ratio=self.mask_ratio)
        out = {k: v for k, v in align.items() if k != "loss"}
        out.update(loss=align["loss"] + mae["loss"], loss_align=align["loss"].detach(), loss_mae=mae["loss"].detach())
        return out

    def cross(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        m = self.model
        b = batch["anchor"].shape[0]
        touch = torch.cat([batch["anchor"], batch["positive"], batch["negative"]])  # (3B, ...)
        sensor = torch.cat([batch["anchor_sensor"], batch["positive_sensor"], batch["negative_sensor"]])
        # one encoder pass over 3B samples computes the original's three passes (every op is per-sample)
        anchor, positive, negative = m.encode_touch(touch, sensor).split(b)
        return matching_loss(anchor, positive, negative, m.cross_head, self.cross_alpha)
