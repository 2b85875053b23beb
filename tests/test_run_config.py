"""Range checks of the training and probe config sections: a bad value fails when the config loads, naming the key,
the value and the expected range (not a ZeroDivisionError after the first step, or a run that trains nothing)."""
import pytest

from anytouch.config import ConfigError, load_config
from anytouch.probe.config import ProbeConfig
from anytouch.train.config import Stage1Config
from anytouch.train.stage2 import Stage2Config


@pytest.mark.parametrize("override, expected", [
    ("train.log_every=0", "train.log_every=0 is out of range; expected train.log_every >= 1"),
    ("train.epochs=-1", "train.epochs=-1 is out of range; expected train.epochs >= 1"),
    ("train.mask_ratio=1.5", r"train.mask_ratio=1.5 is out of range; expected train.mask_ratio in \[0, 1\)"),
    ("train.mask_ratio=1.0", r"expected train.mask_ratio in \[0, 1\)"),
    ("train.accum_iter=0", "train.accum_iter >= 1"),
    ("train.beta_end=1.5", r"train.beta_end in \[0, 1\]"),
    ("train.max_steps=0", "train.max_steps >= 1"),
    ("train.ckpt_every_steps=-1", "train.ckpt_every_steps >= 0"),
    ("train.keep_last=-1", "train.keep_last >= 0"),
    ("train.keep_every=-2", "train.keep_every >= 0"),
    ("optim.lr=-1e-4", "optim.lr=-0.0001 is out of range; expected optim.lr >= 0"),
    ("optim.blr=-1", "optim.blr >= 0"),
    ("optim.weight_decay=-0.1", "optim.weight_decay >= 0"),
    ("optim.betas=[0.9, 1.0]", r"optim.betas=\(0.9, 1.0\) is out of range; expected optim.betas in \[0, 1\)"),
    ("optim.eps=0", "optim.eps > 0"),
    ("optim.warmup_epochs=-1", "optim.warmup_epochs >= 0"),
    ("optim.min_lr=-1", "optim.min_lr >= 0"),
    ("optim.clip_grad=0", "optim.clip_grad > 0"),
    ("optim.lr=.nan", "optim.lr=nan is out of range"),
])
def test_training_ranges_are_checked_when_the_config_loads(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(Stage1Config, [], [override])


def test_stage2_train_section_has_the_same_checks_and_valid_edges_pass():
    with pytest.raises(ConfigError, match="train.log_every >= 1"):
        load_config(Stage2Config, [], ["train.log_every=0"])
    with pytest.raises(ConfigError, match="batch size must be a positive integer"):
        load_config(Stage2Config, [], ["train.batch_size={image: 0}"])
    cfg = load_config(Stage1Config, [], ["train.mask_ratio=0", "train.epochs=1", "optim.lr=0", "train.beta_end=1",
                                         "train.keep_last=0", "train.keep_every=0", "optim.warmup_epochs=0"])
    assert (cfg.train.mask_ratio, cfg.optim.lr, cfg.train.beta_end) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize("override, expected", [
    ("probe.epochs=0", "probe.epochs=0 is out of range; expected probe.epochs >= 1"),
    ("probe.batch_size=0", "probe.batch_size 0: a batch size must be a positive integer"),
    ("probe.eval_batch_size=0", "probe.eval_batch_size 0: a batch size must be a positive integer"),
    ("probe.val_fraction=1", r"probe.val_fraction in \[0, 1\)"),
    ("probe.seeds=0", "probe.seeds >= 1"),
    ("probe.views=0", "probe.views >= 1"),
    ("probe.log_every=0", "probe.log_every >= 1"),
    ("probe.grid.lr=[1e-3, -1e-3]", "probe.grid.lr=.* is out of range; expected probe.grid.lr >= 0"),
    ("probe.grid.weight_decay=[-0.1]", "probe.grid.weight_decay >= 0"),
    ("optim.lr=-1", "optim.lr >= 0"),
])
def test_probe_ranges_are_checked_when_the_config_loads(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(ProbeConfig, [], [override])
