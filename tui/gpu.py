"""Live view of local GPUs through NVML (``nvidia-ml-py``), when it is installed.

Per GPU: memory and utilisation; per process on it: the memory it holds and its share of the
streaming multiprocessors, and which run it writes (the process holding one of the run's event
files open), as nvitop shows. Without the package, a driver or a GPU, :meth:`Nvml.read`
answers a calm reason instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GpuProcess:
    """One process using a GPU."""

    gpu: int
    pid: int
    name: str
    memory_mb: float | None
    """None where NVML does not report it (some drivers, other users' processes)."""
    sm_util_pct: float | None = None


@dataclass(frozen=True)
class GpuStat:
    """One GPU's live figures."""

    index: int
    name: str
    memory_used_mb: float
    memory_total_mb: float
    utilization_pct: float | None
    processes: tuple[GpuProcess, ...] = ()


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
                gpus.append(
                    GpuStat(
                        i,
                        str(name),
                        mem.used / 2**20,
                        mem.total / 2**20,
                        util,
                        self._processes(i, handle),
                    )
                )
        except Exception as exc:  # noqa: BLE001
            return GpuView(tuple(gpus), f"NVML error: {type(exc).__name__}")
        return GpuView(tuple(gpus), "" if gpus else "no GPU: NVML sees no device")

    def _processes(self, index: int, handle: object) -> tuple[GpuProcess, ...]:
        """Compute processes on one GPU with their memory and SM utilisation, where known."""
        nvml = self._nvml
        try:
            running = list(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        except Exception:  # noqa: BLE001 - not supported / no permission: show the GPU alone
            return ()
        util: dict[int, float] = {}
        try:
            for sample in nvml.nvmlDeviceGetProcessUtilization(handle, 0):
                util[int(sample.pid)] = float(sample.smUtil)
        except Exception:  # noqa: BLE001 - no recent samples, or unsupported
            pass
        out = []
        for p in running:
            used = getattr(p, "usedGpuMemory", None)
            pid = int(p.pid)
            out.append(
                GpuProcess(
                    index,
                    pid,
                    process_name(pid),
                    None if used is None else used / 2**20,
                    util.get(pid),
                )
            )
        return tuple(sorted(out, key=lambda q: -(q.memory_mb or 0.0)))


def process_name(pid: int) -> str:
    """The program name of ``pid`` (``/proc/<pid>/comm``), or ``?``."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"


def run_of_process(pid: int, run_dirs: Mapping[str, Path]) -> str | None:
    """The run whose folder holds a file ``pid`` has open (its event file), if any.

    Reads ``/proc/<pid>/fd``: only processes of the same user (or any, as root) can be matched.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    folders = {str(path.resolve()): name for name, path in run_dirs.items()}
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        parent = os.path.dirname(target)
        for _ in range(2):  # the run folder, or one folder below it (e.g. <run>/train)
            if parent in folders:
                return folders[parent]
            parent = os.path.dirname(parent)
    return None


def format_gpus(view: GpuView, runs_by_pid: Mapping[int, str] | None = None) -> str:
    """One line per GPU and one per process on it, or the reason there is none."""
    if not view.gpus:
        return view.reason or "no GPU"
    lines = []
    for g in view.gpus:
        util = "" if g.utilization_pct is None else f"  util {g.utilization_pct:.0f}%"
        lines.append(
            f"GPU{g.index} {g.name}: {g.memory_used_mb:,.0f} / {g.memory_total_mb:,.0f} MiB{util}"
        )
        for p in g.processes:
            mem = "? MiB" if p.memory_mb is None else f"{p.memory_mb:,.0f} MiB"
            sm = "" if p.sm_util_pct is None else f"  sm {p.sm_util_pct:.0f}%"
            run = (runs_by_pid or {}).get(p.pid)
            owner = f"  run {run}" if run else ""
            lines.append(f"  pid {p.pid} {p.name}: {mem}{sm}{owner}")
    return "\n".join(lines)
