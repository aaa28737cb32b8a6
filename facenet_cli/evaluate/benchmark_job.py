"""``facenet validate MODEL --benchmark NAME=PATH ...``: several benchmarks, one table.

Reads each benchmark once (``load_benchmark``), embeds with the model (or, with
``--all-checkpoints``, with each checkpoint of the run in step order), prints one table (or
``--json``), writes the figures as events into the run's log folder for ``facenet board``, and
with ``--worst N`` lists (and ``--worst-png`` draws) the most confident mistakes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.data.benchmark_sets import VerificationSet, load_benchmark, parse_spec
from facenet_cli.errors import InputError
from facenet_cli.evaluate.benchmarks import (
    BENCHMARK_COLUMNS,
    BenchmarkReport,
    benchmark_rows,
    benchmark_scalars,
    evaluate_benchmarks,
)

if TYPE_CHECKING:
    from facenet_cli.config import ValidateConfig

_STEP = re.compile(r"-(\d+)$")


def benchmark_specs(config: ValidateConfig) -> tuple[Path, list[tuple[str, Path]]]:
    """The model and the ``(name, path)`` benchmarks of a validate command line.

    ``facenet validate MODEL --benchmark ...`` (the one positional is the model), or
    ``facenet validate DATA MODEL [--benchmark ...]``, where DATA is LFW (or, for a pack named
    after a benchmark such as ``cfp_fp.bin``, that benchmark).

    Raises:
        InputError: no model, a malformed or unknown ``--benchmark``, a benchmark given twice.
    """
    from facenet_cli.data.benchmark_sets import benchmark_names

    specs = [parse_spec(s) for s in config.benchmark]
    if config.model is None:
        if config.lfw_dir is None:
            raise InputError("validate --benchmark needs MODEL")
        model = Path(config.lfw_dir)
    else:
        model = Path(config.model)
        if config.lfw_dir is not None:
            data = Path(config.lfw_dir)
            name = data.stem if data.stem in benchmark_names() else "lfw"
            specs.insert(0, (name, data))
    seen: set[str] = set()
    for name, _ in specs:
        if name in seen:
            raise InputError(f"benchmark {name} given twice")
        seen.add(name)
    if not specs:
        raise InputError("validate: no benchmark given (--benchmark NAME=PATH)")
    return model, specs


def checkpoint_step(source: Path) -> int:
    """The global step a checkpoint prefix holds (``ckpt-200`` -> 200); 0 when not named so."""
    m = _STEP.search(Path(source).name)
    return int(m.group(1)) if m else 0


def run_checkpoints(model: Path) -> list[Path]:
    """Every checkpoint prefix of a run folder, in step order.

    Raises:
        InputError: not a folder, or a folder without checkpoints.
    """
    if not model.is_dir():
        raise InputError(f"{model}: --all-checkpoints needs a run directory")
    prefixes = [p.with_suffix("") for p in model.glob("*.index")]
    if not prefixes:
        raise InputError(f"{model}: no checkpoints (*.index) in this run directory")
    return sorted(prefixes, key=lambda p: (checkpoint_step(p), p.name))


def run_log_dir(model: Path) -> Path | None:
    """The log folder of the run a model belongs to (where ``facenet train`` wrote its events).

    A run folder (or a checkpoint in one) whose ``config.toml`` names ``logs_base_dir`` logs to
    ``<logs_base_dir>/<run name>``; without one, ``$FACENET_LOGS/<run name>`` when it exists.
    """
    import tomllib

    from facenet_cli.config import default_logs_dir

    run = model if model.is_dir() else model.parent
    base = default_logs_dir()
    config = run / "config.toml"
    if config.is_file():
        try:
            with open(config, "rb") as f:
                base = Path(tomllib.load(f).get("logs_base_dir", base)).expanduser()
        except (OSError, tomllib.TOMLDecodeError):
            pass
    candidate = base / run.name
    return candidate if candidate.is_dir() else None


@dataclasses.dataclass(frozen=True)
class CheckpointResult:
    """The benchmarks' reports for one model or checkpoint."""

    source: Path
    step: int
    reports: list[BenchmarkReport]
    embedded: int | None = None  # images through the model (None without the cache)
    reused: int | None = None


def _image_loader(sets: list[VerificationSet]) -> Any:
    from facenet_cli.data.images import read_image
    from facenet_cli.data.verification_pack import pack_image

    packs = {str(s.pack.path): s.pack for s in sets if s.pack is not None}

    def load(name: str) -> np.ndarray:
        path, sep, index = name.rpartition("#")
        if sep and path in packs and index.isdigit():
            return pack_image(packs[path], int(index))
        return read_image(name)

    return load


def run_benchmarks(config: ValidateConfig) -> list[CheckpointResult]:
    """``facenet validate`` with ``--benchmark`` (or a pack, or ``--all-checkpoints``).

    Raises:
        InputError: bad benchmarks, model or data (see ``load_benchmark``).
    """
    from facenet_cli.config import cache_dir
    from facenet_cli.evaluate.embedding_store import CachedEmbedding, model_key
    from facenet_cli.evaluate.validate import configure_embedding
    from facenet_cli.models.loading import load_embedding_model
    from facenet_cli.progress import console, progress_bars

    model_path, specs = benchmark_specs(config)
    sets = [load_benchmark(name, path) for name, path in specs]
    sources = run_checkpoints(model_path) if config.all_checkpoints else [model_path]
    results: list[CheckpointResult] = []
    info: Any = None
    with progress_bars("rate", transient=True) as progress:
        for source in sources:
            model = load_embedding_model(source)
            info = model.info
            embed, crop, notes = configure_embedding(model, config)
            if source is sources[0]:
                for note in notes:
                    console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
            cached = None
            if config.embedding_cache:
                settings = {"crop": crop, "notes": notes, "info": dataclasses.asdict(model.info)}
                key = model_key(model.source, settings)
                cached = CachedEmbedding(embed, cache_dir() / "embeddings" / f"{key}.npz")
                embed = cached
            state: dict[str, Any] = {}
            label = Path(source).name

            def on_set(data: VerificationSet, label: str = label, state: Any = state) -> None:
                state["name"] = f"{label}: {data.benchmark.title}"

            def on_start(total: int, state: Any = state) -> None:
                state["task"] = progress.add_task(state["name"], total=total, rate="")

            def on_batch(n: int, state: Any = state) -> None:
                progress.update(state["task"], advance=n)

            reports = evaluate_benchmarks(
                embed,
                sets,
                image_size=crop,
                batch_size=config.lfw_batch_size,
                use_flipped_images=config.use_flipped_images,
                distance_metric=config.distance_metric,
                subtract_mean=config.subtract_mean,
                far_target=config.far_target,
                strict=config.strict,
                on_set=on_set,
                on_start=on_start,
                on_batch=on_batch,
            )
            if cached is not None:
                cached.save()
            step = checkpoint_step(Path(model.source))
            results.append(
                CheckpointResult(
                    Path(model.source),
                    step,
                    reports,
                    None if cached is None else cached.computed,
                    None if cached is None else cached.reused,
                )
            )
    for b in results[-1].reports:
        for warning in b.report.warnings:
            console.print(f"[yellow]warning:[/] {b.name}: {warning}", highlight=False,
                          soft_wrap=True)  # fmt: skip
    events_dir = config.events_dir if config.events_dir is not None else run_log_dir(model_path)
    worst = _worst(config, results[-1].reports, sets)
    if config.json:
        print(json.dumps(_as_json(model_path, results, worst, events_dir, info), indent=2),
              flush=True)  # fmt: skip
    else:
        _print_tables(model_path, results, worst, events_dir)
    if events_dir is not None:
        _write_events(events_dir, results)
    return results


def _worst(
    config: ValidateConfig, reports: list[BenchmarkReport], sets: list[VerificationSet]
) -> dict[str, list[Any]]:
    from facenet_cli.evaluate.worst import worst_pairs, write_contact_sheet

    if config.worst <= 0 and config.worst_png is None:
        return {}
    n = config.worst if config.worst > 0 else 8
    out = {b.name: worst_pairs(b.report, n) for b in reports}
    if config.worst_png is not None:
        load = _image_loader(sets)
        png = Path(config.worst_png)
        for b in reports:
            path = png if len(reports) == 1 else png.with_name(f"{png.stem}_{b.name}{png.suffix}")
            title = f"{b.title}: {n} worst false accepts and false rejects"
            write_contact_sheet(path, out[b.name], load, title=title)
    return out


def _write_events(events_dir: Path, results: list[CheckpointResult]) -> None:
    from facenet_cli.errors import StorageError
    from facenet_cli.events import EventWriter

    try:
        with EventWriter(events_dir, flush_secs=0, filename_suffix=".validate") as writer:
            for r in results:
                writer.scalars(benchmark_scalars(r.reports), r.step)
    except OSError as exc:
        raise StorageError(f"{events_dir}: cannot write the events ({exc.strerror})") from None


def _as_json(
    model: Path,
    results: list[CheckpointResult],
    worst: dict[str, list[Any]],
    events_dir: Path | None,
    info: Any,
) -> dict[str, Any]:
    def one(r: CheckpointResult) -> dict[str, Any]:
        return {
            "checkpoint": str(r.source),
            "step": r.step,
            "images_embedded": r.embedded,
            "images_reused": r.reused,
            "benchmarks": [b.to_dict() for b in r.reports],
        }

    last = one(results[-1])
    out: dict[str, Any] = {"model": str(model), **last}
    out["model_info"] = dataclasses.asdict(info) if info is not None else None
    if len(results) > 1:
        out["checkpoints"] = [one(r) for r in results]
    out["worst"] = {name: [p.to_dict() for p in pairs] for name, pairs in worst.items()}
    out["events_dir"] = None if events_dir is None else str(events_dir)
    return out


def _print_tables(
    model: Path,
    results: list[CheckpointResult],
    worst: dict[str, list[Any]],
    events_dir: Path | None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    last = results[-1]
    table = Table(title=f"{model.name}: step {last.step}", title_justify="left")
    for i, column in enumerate(BENCHMARK_COLUMNS):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in benchmark_rows(last.reports):
        table.add_row(*row)
    out.print(table)
    if len(results) > 1:
        names = [b.title for b in last.reports]
        steps = Table(title="accuracy over checkpoints", title_justify="left")
        steps.add_column("step", justify="right")
        for name in names:
            steps.add_column(name, justify="right")
        steps.add_column("embedded / reused", justify="right")
        for r in results:
            reuse = "" if r.embedded is None else f"{r.embedded} / {r.reused}"
            steps.add_row(str(r.step), *(f"{b.report.result.accuracy_mean:.4f}"
                                         for b in r.reports), reuse)  # fmt: skip
        out.print(steps)
    for name, pairs in worst.items():
        if not pairs:
            out.print(f"{name}: no false accepts or false rejects")
            continue
        out.print(f"{name}: worst pairs (distance vs its fold's threshold)")
        for p in pairs:
            label = "false accept" if p.kind == "false_accept" else "false reject"
            out.print(f"  {label:12s} {p.distance:.4f} vs {p.threshold:.3f}  "
                      f"{p.images[0]}  {p.images[1]}", soft_wrap=True)  # fmt: skip
    if last.embedded is not None:
        out.print(f"images embedded {last.embedded}, reused from the cache {last.reused}")
    if events_dir is not None:
        out.print(f"events written to {events_dir} (facenet board {events_dir.parent})")
