"""The marked runs' settings side by side: flattened, compared, the differing keys first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tui.model import RunSummary


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables as dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flatten_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass(frozen=True)
class SettingRow:
    """One key of the runs' settings, side by side (None where a run lacks the key)."""

    key: str
    values: tuple[Any, ...]
    differs: bool


def compare_settings(configs: list[dict[str, Any] | None]) -> list[SettingRow]:
    """Every key of the runs' settings, the keys whose values differ first, then by name.

    A run without a config contributes nothing; a key missing from some runs differs.
    """
    flat = [flatten_config(c) if c is not None else {} for c in configs]
    keys = sorted({k for f in flat for k in f})
    rows = []
    for key in keys:
        values = tuple(f.get(key) for f in flat)
        present = [v for f, v in zip(flat, values, strict=True) if f]
        differs = any(v != present[0] for v in present[1:]) if present else False
        rows.append(SettingRow(key, values, differs))
    return sorted(rows, key=lambda r: (not r.differs, r.key))


def accuracy_spread(summaries: list[RunSummary]) -> float | None:
    """How far apart the runs' best LFW accuracies are (max - min); None under two values."""
    best = [s.best_accuracy for s in summaries if s.best_accuracy is not None]
    return max(best) - min(best) if len(best) >= 2 else None
