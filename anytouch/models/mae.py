"""Stage-1 model of AnyTouch: masked autoencoding of tactile images and clips with next-frame prediction.

docs/original/architecture.md. Follows the readable split of MAE (He et al. 2022, facebookresearch/mae
``models_mae.py``): ``patchify`` / ``unpatchify`` / ``forward_encoder`` / ``forward_decoder`` / ``forward_loss``.
AnyTouch specifics: the decoder consumes the encoder tokens *after* the contrastive projection (no post-LN,
docs/original/architecture.md#touch-encoder), keeps the 6 prefix tokens (CLS + sensor tokens; only CLS gets a position),
and a video head predicts 4 frames per patch: frames 0-2 are reconstructed on masked patches, frame 3 is predicted
everywhere (docs/original/architecture.md#mae-losses).
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
import torch.nn as nn

from ..sensors import SensorLike
from .config import ArchConfig
from .layers import Transformer
from .touch_encoder import TouchEncoder

__all__ = ["TouchMAE", "sincos_pos_embed_2d"]


def sincos_pos_embed_2d(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """The MAE fixed 2-D sin-cos table, (1 + grid², dim) with an all-zero CLS row
    (docs/original/architecture.md#mae-decoder).

    The first dim/2 channels encode the column index, the last dim/2 the row index (MAE's meshgrid order); within
    each half: sin(pos·ω_i) then cos(pos·ω_i), ω_i = 10000^(-i/(dim/4)).
    """
    if dim % 4:
        raise ValueError(f"sin-cos embedding dim must be divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")

    def emb_1d(pos):  # (grid²,) -> (grid², dim/2)
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([emb_1d(cols), emb_1d(rows)], axis=1)  # patch n = row*grid + col
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return torch.from_numpy(table).float()


class TouchMAE(nn.Module):
    """Touch encoder + MAE decoder with an image head and a (pred_frames)-frame video head.

    ``parts``: the scalar entries :meth:`forward` returns for image and for clip batches, ``loss`` first (what a
    training loop logs; ``pred`` and ``mask`` are tensors, not parts)."""

    parts = {"image": ("loss", "loss_recon"), "video": ("loss", "loss_recon", "loss_pred")}

    def __init__(self, arch: ArchConfig, norm_pix_loss: bool = False):
        super().__init__()
        d = arch.decoder
        self.arch = arch
        self.norm_pix_loss = norm_pix_loss
        self.encoder = TouchEncoder(arch)
        p, n = arch.touch.patch_size, arch.touch.num_patches
        self.patch_dim = p * p * 3
        self.pred_frames = arch.pred_frames
        self.decoder_embed = nn.Linear(arch.projection_dim, d.width)
        self.mask_token = nn.Parameter(torch.randn(1, 1, d.width) * 0.02)
        self.register_buffer("decoder_pos_embed", sincos_pos_embed_2d(d.width, arch.touch.grid).unsqueeze(0))
        self.decoder_blocks = Transformer(d.width, d.layers, d.heads, d.mlp_width, d.layer_norm_eps, d.act)
        self.decoder_norm = nn.LayerNorm(d.width, eps=d.layer_norm_eps)
        self.head_image = nn.Linear(d.width, self.patch_dim)
        self.head_video = nn.Linear(d.width, self.patch_dim * arch.pred_frames)
        self.num_patches = n

    # -- pixels <-> patches ---------------------------------------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs: (B, 3, H, W) -> (B, N, p·p·3), or clips (B, T, 3, H, W) -> (B, N, T, p·p·3); vector order (p, q, c)."""
        p = self.arch.touch.patch_size
        if imgs.ndim == 5:
            return torch.stack([self.patchify(imgs[:, t]) for t in range(imgs.shape[1])], dim=2)
        b, c, hh, ww = imgs.shape
        h, w = hh // p, ww // p
        x = imgs.reshape(b, c, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)  # (B, h, w, p, p, 3)
        return x.reshape(b, h * w, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, p·p·3) -> (B, 3, H, W); (B, N, T, p·p·3) -> (B, T, 3, H, W)."""
        p = self.arch.touch.patch_size
        if x.ndim == 4:
            return torch.stack([self.unpatchify(x[:, :, t]) for t in range(x.shape[2])], dim=1)
        b, n, _ = x.shape
        h = w = int(round(n ** 0.5))
        x = x.reshape(b, h, w, p, p, 3)
        x = torch.einsum("nhwpqc->nchpwq", x)  # (B, 3, h, p, w, p)
        return x.reshape(b, 3, h * p, w * p)

    # -- model ----------------------------------------------------------------------------------------------
    def forward_encoder(self, touch: torch.Tensor, sensor: SensorLike, mask_ratio: float,
                        noise: Optional[torch.Tensor] = None):
        """Returns (latent (B, 6 + K, P) projected tokens, mask (B, N), ids_restore (B, N))."""
        tokens, mask, ids_restore = self.encoder.forward_features(touch, sensor, mask_ratio, noise)
        if mask is None:  # no masking: identity restore order
            b = tokens.shape[0]
            mask = torch.zeros(b, self.num_patches, device=tokens.device, dtype=tokens.dtype)
            ids_restore = torch.arange(self.num_patches, device=tokens.device).expand(b, -1)
        return self.encoder.proj(tokens), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor, video: bool) -> torch.Tensor:
        """latent (B, 6 + K, P) -> pred (B, N, p·p·3) for images or (B, N, pred_frames, p·p·3) for clips."""
        npre = self.encoder.num_prefix_tokens
        x = self.decoder_embed(latent)  # (B, 6 + K, Dd)
        b, _, dd = x.shape
        visible = x[:, npre:]
        mask_tokens = self.mask_token.to(x.dtype).expand(b, self.num_patches - visible.shape[1], dd)
        patches = torch.cat([visible, mask_tokens], dim=1)  # (B, N, Dd) in shuffled order
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dd))  # original patch order
        pos = self.decoder_pos_embed.to(x.dtype)
        cls = x[:, :1] + pos[:, :1]
        x = torch.cat([cls, x[:, 1:npre], patches + pos[:, 1:]], dim=1)  # (B, 6 + N, Dd); sensor tokens unpositioned
        x = self.decoder_norm(self.decoder_blocks(x))[:, npre:]  # (B, N, Dd)
        if video:
            return self.head_video(x).view(b, self.num_patches, self.pred_frames, self.patch_dim)
        return self.head_image(x)

    def forward_loss(self, target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        """docs/original/architecture.md#mae-losses. target: normalised pixels, (B,3,H,W) or (B,pred_frames,3,H,W); pred
        as from forward_decoder; mask (B, N), 1 = removed. Image: masked-patch MSE. Video: masked MSE over the
        reconstructed frames plus the MSE of the predicted frame(s) over all patches."""
        tgt = self.patchify(target)
        if self.norm_pix_loss:
            mean, var = tgt.mean(-1, keepdim=True), tgt.var(-1, keepdim=True)
            tgt = (tgt - mean) / (var + 1e-6) ** 0.5
        err = (pred.float() - tgt.float()) ** 2
        mask = mask.float()
        if err.ndim == 3:  # image: (B, N, p·p·3)
            recon = (err.mean(-1) * mask).sum() / mask.sum()
            return {"loss": recon, "loss_recon": recon}
        nf = self.encoder.num_frames
        recon = (err[:, :, :nf].mean(dim=(-1, -2)) * mask).sum() / mask.sum()  # (B, N) masked mean
        pred_term = err[:, :, nf:].mean()  # future frame(s), every patch
        return {"loss": recon + pred_term, "loss_recon": recon, "loss_pred": pred_term}

    def forward(self, touch: torch.Tensor, sensor: SensorLike, mask_ratio: float = 0.75,
                noise: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """touch: (B,3,H,W) image objective or (B,pred_frames,3,H,W) clip objective (frames 0..2 in, all predicted).

        Returns {"loss", "loss_recon", "loss_pred" (clips), "pred", "mask"}.
        """
        video = touch.ndim == 5
        if video and touch.shape[1] != self.pred_frames:
            raise ValueError(f"the video objective needs clips of {self.pred_frames} frames, got {tuple(touch.shape)}")
        latent, mask, ids_restore = self.forward_encoder(touch, sensor, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore, video)
        out = self.forward_loss(touch, pred, mask)
        out.update(pred=pred, mask=mask)
        return out
