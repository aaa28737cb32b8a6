"""Live view of local GPUs through NVML (``nvidia-ml-py``), when it is installed.

Without the package, a driver or a GPU, :func:`read_gpus` answers a calm reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuStat:
    """One GPU's live figures."""

    index: int
    name: str
    memory_used_mb: float
    memory_total_mb: float
    utilization_pct: float | None


@dataclass(frozen=True)
class GpuView:
    """What NVML shows now: GPUs, or why there are none."""

    gpus: tuple[GpuStat, ...]
    reason: str = ""


class Nvml:
    """NVML, initialised once on first use; every failure becomes a ``reason``."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._reason = ""
        self._tried = False

    def _init(self) -> None:
        self._tried = True
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            self._reason = "no GPU view: nvidia-ml-py is not installed"
            return
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError subclasses vary by driver
            self._reason = f"no GPU: NVML unavailable ({type(exc).__name__})"
            return
        self._nvml = pynvml

    def read(self) -> GpuView:
        """Current memory and utilisation of every local GPU."""
        if not self._tried:
            self._init()
        nvml = self._nvml
        if nvml is None:
            return GpuView((), self._reason)
        gpus: list[GpuStat] = []
        try:
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                name = nvml.nvmlDeviceGetName(handle)
                if isinstance(name, bytes):
                    name = name.decode(errors="replace")
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                try:
                    util: float | None = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                except Exception:  # noqa: BLE001 - not supported on every device
                    util = None
                gpus.append(GpuStat(i, str(name), mem.used / 2**20, mem.total / 2**20, util))
        except Exception as exc:  # noqa: BLE001
            return GpuView(tuple(gpus), f"NVML error: {type(exc).__name__}")
        return GpuView(tuple(gpus), "" if gpus else "no GPU: NVML sees no device")


def format_gpus(view: GpuView) -> str:
    """One line per GPU, or the reason there is none."""
    if not view.gpus:
        return view.reason or "no GPU"
    lines = []
    for g in view.gpus:
        util = "" if g.utilization_pct is None else f"  util {g.utilization_pct:.0f}%"
        lines.append(
            f"GPU{g.index} {g.name}: {g.memory_used_mb:,.0f} / {g.memory_total_mb:,.0f} MiB{util}"
        )
    return "\n".join(lines)
