"""Training one run on several processes under ``torchrun``: DistributedDataParallel
(gloo on CPU, NCCL on CUDA), each process training on its share of every epoch's rows
(``torch.utils.data.DistributedSampler``), gradients averaged at every step.

``torchrun --nproc_per_node N ser train ...`` sets ``WORLD_SIZE`` / ``RANK`` /
``LOCAL_RANK``; ``join`` starts the process group once per process. With N = 1, or
without torchrun, ``join`` returns None and training takes exactly its one-process path.

What changes with N > 1 (so a run's key holds ``world_size``): each process takes
``batch_size / N`` rows per step, so a step still averages ``batch_size`` rows and an
epoch has the same number of steps; the order, SpecAugment and dropout draws come from
(seed, epoch, rank). Only rank 0 writes the checkpoint, metrics, model and manifest and
logs progress; every rank resumes from the checkpoint.

Several machines: the same command on each, with ``--nnodes M --node_rank I
--rdzv_backend c10d --rdzv_endpoint HOST:PORT``, and ``--artifacts-dir`` on a filesystem
they share (see README, "Running on a cluster").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

from pipeline.core.errors import TrainingError


@dataclass(frozen=True)
class Group:
    """This process's place in a multi-process run."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def join(device) -> Group | None:
    """Start (once per process) the process group torchrun describes, with NCCL for a
    CUDA ``device`` and gloo otherwise; None when there is one process. Ranks > 0 log
    warnings only. Raises ``TrainingError`` when the environment is inconsistent."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size <= 1:
        return None
    import torch.distributed as dist

    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise TrainingError(f"WORLD_SIZE={world_size} but RANK is unset or not a number: "
                            "start multi-process training with torchrun") from None
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if rank:
        from pipeline.core.progress import log

        log.setLevel("WARNING")
    return Group(rank, world_size, local_rank)


def rank_device(device, group: Group | None):
    """This rank's device: its own GPU (``cuda:LOCAL_RANK``) on CUDA, else ``device``."""
    import torch

    if group is None or device.type != "cuda":
        return device
    torch.cuda.set_device(group.local_rank)
    return torch.device("cuda", group.local_rank)


def rank_config(config, group: Group | None):
    """The recipe one rank trains with: ``batch_size / world_size`` rows per step."""
    if group is None:
        return config
    return replace(config, batch_size=max(1, config.batch_size // group.world_size))


def rank_rows(rows: int, group: Group | None) -> int:
    """How many of ``rows`` training rows one rank sees per epoch (the sampler pads)."""
    return rows if group is None else math.ceil(rows / group.world_size)


def wrap(model, group: Group | None, device):
    """The network the loop calls: ``model`` itself, or DistributedDataParallel over it."""
    if group is None:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def rank_order(rows, group: Group, *, seed: int, epoch: int):
    """This rank's rows of one epoch, a tensor: ``rows`` shuffled from (seed, epoch) by
    ``DistributedSampler`` and split between the ranks (padded to equal shares)."""
    import torch
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(len(rows)), num_replicas=group.world_size,
                                 rank=group.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return torch.from_numpy(rows)[torch.tensor(list(sampler), dtype=torch.long)]


def barrier(group: Group | None) -> None:
    """Wait for every rank (no-op with one process)."""
    if group is not None:
        import torch.distributed as dist

        dist.barrier()
