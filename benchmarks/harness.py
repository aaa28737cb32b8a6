"""Time a function and its baseline alternately in one process and report the ratio.

Alternating (A, B, A, B, ...) spreads the machine's noise over both sides, so the ratio of the
medians is meaningful on a shared, noisy host even when absolute times are not.
"""

from __future__ import annotations

import datetime as _dt
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facenet_cli.cpu import cpu_count

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
_HEADER = (
    "| date | benchmark | ours (median) | baseline (median) | ratio | target | notes |\n"
    "|---|---|---|---|---|---|---|\n"
)
_MARKER = "<!-- results: rows appended by python -m benchmarks -->"


@dataclass
class Comparison:
    """Result of one side-by-side measurement; ``ratio`` > 1 means ours is faster."""

    name: str
    ours: str
    baseline: str
    ours_s: list[float]
    baseline_s: list[float]
    units: float = 1.0  # work items per call, for a throughput column
    unit_name: str = "call"
    target: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours_s)

    @property
    def baseline_median(self) -> float:
        return statistics.median(self.baseline_s)

    @property
    def ratio(self) -> float:
        return self.baseline_median / self.ours_median

    def describe(self, seconds: float) -> str:
        if self.units != 1.0 or self.unit_name != "call":
            return f"{seconds * 1e3:.3g} ms ({self.units / seconds:.3g} {self.unit_name}/s)"
        return f"{seconds * 1e3:.3g} ms"

    def summary(self) -> str:
        lines = [
            f"{self.name}",
            f"  ours     ({self.ours}): {self.describe(self.ours_median)}",
            f"  baseline ({self.baseline}): {self.describe(self.baseline_median)}",
            f"  ratio: {self.ratio:.2f}x" + (f"   target: {self.target}" if self.target else ""),
        ]
        lines += [f"  {k}: {v}" for k, v in self.extra.items()]
        return "\n".join(lines)


def compare(
    name: str,
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    *,
    ours_label: str = "ours",
    baseline_label: str = "baseline",
    repeats: int = 5,
    warmup: int = 1,
    units: float = 1.0,
    unit_name: str = "call",
    target: str = "",
    notes: str = "",
) -> Comparison:
    """Run ``ours`` and ``baseline`` alternately ``repeats`` times after ``warmup`` rounds."""
    for _ in range(warmup):
        ours()
        baseline()
    ours_s: list[float] = []
    base_s: list[float] = []
    for i in range(repeats):
        # Alternate which side goes first so neither always follows the other's cache state.
        order = (
            ((ours, ours_s), (baseline, base_s))
            if i % 2 == 0
            else ((baseline, base_s), (ours, ours_s))
        )
        for fn, sink in order:
            t0 = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - t0)
    return Comparison(
        name, ours_label, baseline_label, ours_s, base_s, units, unit_name, target, notes
    )


def record(result: Comparison, path: Path = BENCHMARKS_MD) -> None:
    """Append a row for ``result`` to BENCHMARKS.md (under its results marker)."""
    date = _dt.date.today().isoformat()
    notes = "; ".join([result.notes, *[f"{k}={v}" for k, v in result.extra.items()]]).strip("; ")
    row = (
        f"| {date} | {result.name} | {result.describe(result.ours_median)} | "
        f"{result.describe(result.baseline_median)} | {result.ratio:.2f}x | {result.target} | "
        f"{notes} ({platform.machine()}, {cpu_count()} cores) |\n"
    )
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{_MARKER}\n"
    if _MARKER not in text:
        text += f"\n{_MARKER}\n"
    head, _, tail = text.partition(_MARKER)
    if _HEADER not in tail:
        tail = "\n" + _HEADER + tail.lstrip("\n")
    path.write_text(head + _MARKER + tail.rstrip("\n") + "\n" + row)


def table(results: list[Comparison]) -> str:
    """One Markdown table of ``results``: what each row of BENCHMARKS.md would say."""
    lines = [
        "| benchmark | ours (median) | baseline (median) | ratio | target | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        notes = "; ".join([r.notes, *[f"{k}={v}" for k, v in r.extra.items()]]).strip("; ")
        lines.append(
            f"| {r.name} | {r.describe(r.ours_median)} | {r.describe(r.baseline_median)} | "
            f"{r.ratio:.2f}x | {r.target} | {notes} |"
        )
    return "\n".join(lines)
