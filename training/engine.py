"""Training plumbing shared by every model: device, DDP, seeding, checkpoints, dataclass configs.

One code path serves a laptop CPU, a single GPU and ``torchrun --nproc_per_node N``:
``init_distributed`` reads torchrun's environment (gloo on CPU, NCCL on CUDA) and is a no-op
when the script is started plainly.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import random
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(prefer_gpu: bool = True) -> DistInfo:
    """Join the torchrun process group if there is one; pick CUDA when present."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = prefer_gpu and torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    log.info("rank %d/%d on %s", rank, world_size, device)
    return DistInfo(rank, world_size, device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Same seed on every rank: identical initial weights, so DDP starts in sync."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Move to the device and wrap in DDP when running under torchrun."""
    model = model.to(info.device)
    if info.distributed:
        device_ids = [info.device.index] if info.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)
    return model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def broadcast_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics).

    DDP broadcasts buffers at the start of each forward, but the last forward still updates each
    rank's statistics from its own shard; without this the ranks end a step with different models.
    """
    if info.distributed:
        for buffer in unwrap(model).buffers():
            torch.distributed.broadcast(buffer.data, 0)


def rank_indices(indices: np.ndarray, info: DistInfo, epoch_seed: int) -> np.ndarray:
    """This rank's share of a shuffled epoch (padded so every rank runs the same step count)."""
    order = np.random.default_rng(epoch_seed).permutation(indices)
    per_rank = int(np.ceil(len(order) / info.world_size))
    padded = np.resize(order, per_rank * info.world_size)
    return padded[info.rank :: info.world_size]


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Average a scalar (e.g. epoch loss) over ranks, for logging the same number everywhere."""
    if not info.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    return float(tensor.item() / info.world_size)


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Atomically write model + optimizer + progress (tensors and plain values only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "state": state}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> dict:
    """Resume; ``weights_only=True`` so a checkpoint can never execute code."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    log.info("resumed from %s (%s)", path, payload["state"])
    return payload["state"]


# ---------------------------------------------------------------------------------------------
# One configuration style for every training entry: a dataclass is the config *and* its CLI
# ---------------------------------------------------------------------------------------------


def _argument_type(hint) -> tuple[type, bool]:
    """(element type, is a list) of a field annotation such as ``int``, ``Path | None``, ``list[int]``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return args[0], True
    if args:  # Optional[...] / X | None
        return _argument_type(args[0])
    return hint, False


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type) -> argparse.ArgumentParser:
    """One ``--option`` per dataclass field (``batch_size`` → ``--batch-size``).

    Field metadata carries what argparse needs beyond the type: ``help``, ``choices``,
    ``nargs``, ``metavar``; a field without a default is required; a ``bool`` is a flag
    (``--no-<flag>`` turns off one that defaults to on).
    """
    hints = typing.get_type_hints(config_cls)
    for item in dataclasses.fields(config_cls):
        meta = dict(item.metadata)
        option = "--" + item.name.replace("_", "-")
        required = item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
        default = None if required else (item.default if item.default is not dataclasses.MISSING else item.default_factory())
        kind, is_list = _argument_type(hints[item.name])
        if kind is bool:  # --flag, or --flag / --no-flag when it is on by default
            action = argparse.BooleanOptionalAction if default else "store_true"
            parser.add_argument(option, action=action, default=bool(default), help=meta.get("help"))
            continue
        extra = {"nargs": meta.get("nargs", "+")} if is_list else {}
        for key in ("choices", "metavar"):
            if key in meta:
                extra[key] = meta[key]
        parser.add_argument(option, type=kind, required=required, default=default, help=meta.get("help"), **extra)
    return parser


def config_from_args(config_cls: type, namespace: argparse.Namespace):
    """The dataclass instance from parsed arguments (lists become tuples for frozen configs)."""
    values = {f.name: getattr(namespace, f.name) for f in dataclasses.fields(config_cls)}
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def parse_config(config_cls: type, argv: list[str] | None, prog: str, description: str):
    """Parse ``argv`` into ``config_cls``: the one way every training entry reads its options."""
    parser = add_config_arguments(argparse.ArgumentParser(prog=prog, description=description), config_cls)
    return config_from_args(config_cls, parser.parse_args(argv))
