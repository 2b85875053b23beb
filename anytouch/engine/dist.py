"""Distributed setup for torchrun: one code path for 1 CPU process, N GPUs and several nodes.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them we run as a single process with no process
group. GPUs use NCCL (one device per local rank), CPUs use gloo.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistEnv", "init_distributed", "shutdown", "side_group", "wrap_ddp", "unwrap", "all_reduce_mean", "gather_to_main",
    "broadcast_from_main",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()


def _env_int(name: str) -> Optional[int]:
    v = os.environ.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name}={v!r} is not an integer") from None


def init_distributed(device: str = "auto") -> DistEnv:
    """Read the torchrun environment, pick the device and (when launched by torchrun) join the process group.

    Args:
        device: ``auto`` (CUDA if available, else CPU), ``cuda`` or ``cpu``.
    """
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be 'auto', 'cuda' or 'cpu', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device=cuda was requested but torch.cuda.is_available() is False (no GPU, or a CPU-only "
                         "torch build); use device=auto or cpu")
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    if rank is None or world is None:
        return DistEnv(device=torch.device("cuda", 0) if use_cuda else torch.device("cpu"))
    local = rank if local is None else local
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA devices are visible; "
                             f"start at most that many processes per node (NGPU)")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1:
        kw = {"device_id": dev} if use_cuda else {}
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world, **kw)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)


# name -> (the default group it was made under, the group). Held here so that ``shutdown`` can release them.
_side_groups: Dict[str, Tuple[Any, Any]] = {}


def side_group(name: str) -> "dist.ProcessGroup":
    """A process group of all ranks, separate from the default one, made once per name and default group.

    Collectives of one group are matched by call order; a side group keeps, e.g., the loss all-gather (run inside
    autograd) from being matched against DDP's gradient all-reduces. Every rank must ask for ``name`` at the same
    point the first time (group creation is itself a collective). ``shutdown`` destroys these groups.
    """
    world, group = _side_groups.get(name, (None, None))
    if world is not dist.group.WORLD:  # first use, or a re-initialised default group
        group = dist.new_group(backend=dist.get_backend())
        _side_groups[name] = (dist.group.WORLD, group)
    return group


def shutdown() -> None:
    """Leave the process group. Delete DDP modules (and optimizers holding their params) before calling this:
    a DDP reducer that outlives its group can abort the process at exit."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # DDP reducers sit in reference cycles; free them while the group still exists
        dist.barrier()  # no rank tears the group down while another still has collectives in flight
        # side groups must be destroyed and dropped before the default group goes: a gloo group object that
        # outlives the destroyed world is freed during interpreter exit and aborts the process (std::terminate)
        for _, group in _side_groups.values():
            dist.destroy_process_group(group)
        _side_groups.clear()
        dist.destroy_process_group()
    _side_groups.clear()


def wrap_ddp(model: nn.Module, env: DistEnv, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` when there is more than one process, else ``model`` itself."""
    if not env.distributed or env.world_size == 1:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP (or the module itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (a copy); identity in a single process. NaN on any rank makes the result NaN everywhere."""
    t = t.detach().clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def gather_to_main(obj: Any) -> Optional[List[Any]]:
    """Pickle-gather ``obj`` from every rank: the list on rank 0, ``None`` elsewhere ([obj] in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` (picklable) on every rank; ``obj`` itself in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
