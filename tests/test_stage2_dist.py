"""Stage 2 on two gloo processes (torchrun, CPU): the batch-type schedule is the same on both ranks, and a run
resumed mid-epoch from its checkpoint ends bitwise where the uninterrupted run ends. Uses the cross-rank gather of
contrastive negatives (loss.gather=true), so that path runs under DDP too.

Run as a script under torchrun, this file is the harness: it trains with ``anytouch.train.stage2.main`` and records,
per rank, the loader and a fingerprint of every batch (``record-rank<r>.json``), and copies the checkpoint written
after global step ``SNAPSHOT_AT`` to ``snapshot.pth``.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _harness(argv):
    from anytouch.engine.checkpointing import LAST
    from anytouch.engine.interleave import Interleaved
    from anytouch.train import stage2

    out = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("run.output_dir=")))
    record, snapshot_at = [], int(os.environ.get("SNAPSHOT_AT", "-1"))
    epoch_fn, save_fn = Interleaved.epoch, stage2.Stage2Trainer.save

    def epoch(self, e, start=0):
        for i, name, batch in epoch_fn(self, e, start):
            x = batch["anchor" if "anchor" in batch else "touch"]
            record.append([e, i, name, float(x.double().sum())])
            yield i, name, batch

    def save(self, epoch, next_epoch, next_step, epoch_end):
        save_fn(self, epoch, next_epoch, next_step, epoch_end)
        if self.env.is_main and next_epoch * self.steps_per_epoch + next_step == snapshot_at:
            shutil.copy(self.out / LAST, self.out / "snapshot.pth")

    Interleaved.epoch, stage2.Stage2Trainer.save = epoch, save
    try:
        stage2.main(argv)
    finally:
        (out / f"record-rank{os.environ['RANK']}.json").write_text(json.dumps(record))


def _torchrun(args, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__, *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def _records(out):
    return [json.loads((out / f"record-rank{r}.json").read_text()) for r in range(2)]


def test_two_ranks_share_the_schedule_and_resume_is_exact(tmp_path):
    from anytouch.checkpoint import save_checkpoint
    from anytouch.models import TouchMAE, get_arch

    torch.manual_seed(0)
    stage1 = save_checkpoint(tmp_path / "stage1.pth", TouchMAE(get_arch("tiny")))
    common = [
        "--config", "configs/stage2.yaml", "model=tiny", "data=synthetic", f"model.stage1_checkpoint={stage1}",
        "data.num_workers=0", "data.synthetic.num_samples=4", "data.synthetic.cross_samples=4", "data.synthetic.render_size=32",
        "data.repeats={tacquad: 1, tag: 1, of_real: 0, visgel: 0, cloth: 0, octopi: 0, ssvtp: 0, tvl: 0, ycb_slide: 0}",
        "train.batch_size={image: 2, image_cross: 1, video: 2, video_cross: 1}", "train.epochs=1",
        "train.ckpt_every_steps=3", "train.log_every=1", "optim.lr=1e-3", "loss.gather=true",
    ]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    _torchrun([*common, f"run.output_dir={full}"], {"SNAPSHOT_AT": "3"})
    rank0, rank1 = _records(full)
    steps = len(rank0)
    assert steps == 6 and [r[:3] for r in rank0] == [r[:3] for r in rank1]  # same loader at every step
    assert {r[2] for r in rank0} == {"image", "image_cross", "video", "video_cross"}
    assert all(a[3] != b[3] for a, b in zip(rank0, rank1))  # ... on different shards

    resumed.mkdir()
    shutil.copy(full / "snapshot.pth", resumed / "checkpoint-last.pth")  # the run "killed" after step 3
    _torchrun([*common, f"run.output_dir={resumed}", "run.resume=auto"])
    for before, after in zip(_records(full), _records(resumed)):
        assert after == before[3:]  # the same batches, in the same order, from step 3 on
    end_full = torch.load(full / "checkpoint-last.pth", weights_only=True)
    end_resumed = torch.load(resumed / "checkpoint-last.pth", weights_only=True)
    assert end_full["step"] == end_resumed["step"] == steps
    for k, v in end_full["model"].items():
        assert torch.equal(v, end_resumed["model"][k]), k
    logs = [[json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (full, resumed)]
    assert [r["train_loss_full"] for r in logs[1]] == [r["train_loss_full"] for r in logs[0][3:]]


if __name__ == "__main__":
    _harness(sys.argv[1:])
