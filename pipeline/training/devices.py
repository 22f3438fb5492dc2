"""Which torch device a stage runs on: ``auto`` picks the best this machine has; a named
device is checked before any work, so a missing GPU is one line, not a traceback."""

from __future__ import annotations

from pipeline.core.errors import TrainingError


def pick_device(requested: str = "auto") -> "torch.device":
    """``auto``: CUDA, else MPS, else CPU; or the device named (``cpu``, ``cuda``,
    ``cuda:N``, ``mps``). Raises ``TrainingError`` naming it when it is not a device name
    or not available on this machine."""
    import torch

    if requested != "auto":
        return _named_device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _named_device(requested: str) -> "torch.device":
    import torch

    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise TrainingError(f"device {requested!r} is not a device name: use auto, cpu, cuda, "
                            "cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no GPU found"
        raise TrainingError(f"device {requested!r}: CUDA is not available on this machine "
                            f"({why}); use cpu, or auto to take what there is")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise TrainingError(f"device {requested!r}: this machine has "
                            f"{torch.cuda.device_count()} CUDA device(s), numbered from 0")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps and mps.is_available()):
        raise TrainingError(f"device {requested!r}: Apple's MPS is not available on this "
                            "machine; use cpu, or auto to take what there is")
    return device
