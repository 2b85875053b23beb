"""The loop's data settings: worker and prefetch defaults from the CPUs per process, and their config checks."""
import os

import pytest

from anytouch.config import ConfigError
from anytouch.data import DataConfig
from anytouch.engine import data as engine_data
from anytouch.engine.data import build_loader, cpus_per_process, default_prefetch, default_workers
from anytouch.engine.dist import DistEnv


def test_workers_and_prefetch_follow_the_cpus_per_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert cpus_per_process() == 16
    assert default_workers(1) == 15 and default_workers(2) == 7 and default_workers(4) == 3  # stage 1, stage 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 processes on the node share the 16 CPUs
    assert cpus_per_process() == 2 and default_workers(2) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert default_workers(1) == 0  # one CPU: load in the training process
    assert default_prefetch(0) is None and default_prefetch(1) == 8 and default_prefetch(3) == 3
    assert default_prefetch(15) == 2


def test_build_loader_uses_the_defaults_unless_set(monkeypatch):
    monkeypatch.setattr(engine_data, "cpus_per_process", lambda: 5)
    ds = list(range(8))
    auto = build_loader(ds, 2, 0, DistEnv(), num_workers=None, loaders=2)
    assert (auto.num_workers, auto.prefetch_factor, auto.persistent_workers) == (2, 4, True)
    fixed = build_loader(ds, 2, 0, DistEnv(), num_workers=1, prefetch_factor=6)
    assert (fixed.num_workers, fixed.prefetch_factor) == (1, 6)
    assert build_loader(ds, 2, 0, DistEnv(), num_workers=0).prefetch_factor is None
    assert not auto.pin_memory  # pinned only for a CUDA device


def test_data_config_checks_the_new_keys():
    assert DataConfig().num_workers is None and DataConfig().store == "raw"
    for bad, match in ((dict(num_workers=-1), "data.num_workers"), (dict(prefetch_factor=0), "data.prefetch_factor"),
                       (dict(store="zip"), "data.store"), (dict(store="packed", source="synthetic"), "store=packed")):
        with pytest.raises(ConfigError, match=match):
            DataConfig(**bad)
