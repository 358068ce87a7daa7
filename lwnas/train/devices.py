"""Devices, processes and seeds: which device to train on (checked before anything starts), the
processes of a multi-GPU run, and one call that seeds every random generator."""
from __future__ import annotations

import os

import numpy as np

from ..errors import LwnasError


def check_device(device: str, cuda_build: bool, visible_gpus: int) -> str:
    """`device` if it names a device this machine has ('cpu', 'gpu', 'gpu:N' with N < visible GPUs), else a
    one-line error. Pure, so every refusal is testable on a machine without GPU."""
    kind, colon, index = device.partition(":")
    if device == "cpu":
        return device
    if kind != "gpu" or (colon and not index.isdigit()):
        raise LwnasError(f"unknown device {device!r}; expected cpu, gpu or gpu:N")
    if not cuda_build:
        raise LwnasError(f"--device {device} asked, but this Paddle build has no CUDA support; install "
                         f"paddlepaddle-gpu or use --device cpu")
    if visible_gpus == 0:
        raise LwnasError(f"--device {device} asked, but no GPU is visible (CUDA_VISIBLE_DEVICES="
                         f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use --device cpu")
    if colon and int(index) >= visible_gpus:
        raise LwnasError(f"--device {device} asked, but only {visible_gpus} GPU(s) are visible "
                         f"(gpu:0 to gpu:{visible_gpus - 1})")
    return device


def visible_gpus() -> int:
    """GPUs this process may use (after CUDA_VISIBLE_DEVICES); 0 on a CPU-only Paddle build."""
    import paddle

    return paddle.device.cuda.device_count() if paddle.device.is_compiled_with_cuda() else 0


def set_device(device: str) -> str:
    """Check `device` (see check_device) and make it Paddle's current device."""
    import paddle

    check_device(device, paddle.device.is_compiled_with_cuda(), visible_gpus())
    paddle.set_device(device)
    return device


def seed_everything(seed: int):
    import random

    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def distributed() -> tuple[int, int]:
    """(rank, world size); more than one process when started by paddle.distributed.launch."""
    import paddle.distributed as dist

    return dist.get_rank(), dist.get_world_size()
