"""The training machinery shared by stage 1, stage 2 and the probes.

``trainer`` (the generic job: setup, resume, epoch loop, checkpoints, logging, teardown), ``dist`` (torchrun / DDP),
``rng`` (derived seeds, RNG state), ``data`` (resumable sharded loaders), ``interleave`` (per-epoch mixing of
several loaders), ``optim`` (AdamW parameter groups), ``schedule`` (LR and universal-sensor schedules), ``step``
(AMP, accumulation, clipping), ``checkpointing``, ``logging`` and ``flops`` (analytic FLOPs for MFU).
"""
