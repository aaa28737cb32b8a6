"""Several verification benchmarks in one evaluation: reports, one table, event scalars.

``evaluate_benchmarks`` takes an in-memory embedding function and the sets read once by
``load_benchmark``; ``facenet validate --benchmark`` calls it with a loaded model, and the
training loop can call it after each epoch with its live one (``caches`` then keep each set's
decoded crops between epochs) and write ``benchmark_scalars`` at the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facenet_cli import events as ev
from facenet_cli.data.benchmark_sets import VerificationSet
from facenet_cli.evaluate.pairs_embedding import (
    CropCache,
    EmbedFn,
    ValidationReport,
    evaluate_on_pack,
    evaluate_on_pairs,
)


@dataclass(frozen=True)
class BenchmarkReport:
    """One benchmark's result.

    Attributes:
        name: the benchmark (``lfw``, ``cfp_fp``, ...).
        title: its display name.
        source: the pack, folder or pairs file it was read from.
        report: the protocol's report.
    """

    name: str
    title: str
    source: str
    report: ValidationReport

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the name, source and the report's figures."""
        return {"name": self.name, "title": self.title, "source": self.source,
                **self.report.to_dict()}  # fmt: skip


def evaluate_set(
    embed: EmbedFn,
    data: VerificationSet,
    *,
    image_size: int,
    batch_size: int = 100,
    use_flipped_images: bool = False,
    distance_metric: int | str = 0,
    subtract_mean: bool = False,
    far_target: float = 1e-3,
    strict: bool = False,
    nrof_folds: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    cache: CropCache | None = None,
) -> BenchmarkReport:
    """Run the protocol on one benchmark's set (a pack, or files and pairs).

    ``nrof_folds`` None: the benchmark's own folds. The other arguments: as for
    ``evaluate_on_pairs``.
    """
    folds = data.benchmark.nrof_folds if nrof_folds is None else nrof_folds
    common: dict[str, Any] = dict(
        image_size=image_size,
        batch_size=batch_size,
        use_flipped_images=use_flipped_images,
        distance_metric=distance_metric,
        subtract_mean=subtract_mean,
        nrof_folds=folds,
        far_target=far_target,
        on_start=on_start,
        on_batch=on_batch,
        cache=cache,
    )
    if data.pack is not None:
        report = evaluate_on_pack(embed, data.pack, **common)
    else:
        assert data.root is not None and data.pairs is not None
        report = evaluate_on_pairs(embed, data.root, data.pairs, strict=strict, **common)
    return BenchmarkReport(data.name, data.benchmark.title, str(data.source), report)


def evaluate_benchmarks(
    embed: EmbedFn,
    sets: Sequence[VerificationSet],
    *,
    image_size: int,
    batch_size: int = 100,
    use_flipped_images: bool = False,
    distance_metric: int | str = 0,
    subtract_mean: bool = False,
    far_target: float = 1e-3,
    strict: bool = False,
    caches: Mapping[str, CropCache] | None = None,
    on_set: Callable[[VerificationSet], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[BenchmarkReport]:
    """Run the protocol on each benchmark, in order, with one embedding function.

    Args:
        embed: raw-pixel batch ``(N, S, S, 3)`` float32 0..255 -> L2-normalised ``(N, D)``
            (``EmbeddingModel.embed``, or the trainer's live model).
        sets: from ``load_benchmark`` (read once; a pack's bytes stay in memory).
        image_size: the model's input size.
        caches: per benchmark name, a :class:`CropCache` that keeps its decoded crops for the
            next call (the trainer's per-epoch evaluations).
        on_set: called before each benchmark is embedded.
        on_start, on_batch: progress, as for ``evaluate_on_pairs`` (per benchmark).
        The others: as for ``evaluate_on_pairs``.

    Returns:
        One :class:`BenchmarkReport` per set, in the order given.

    Raises:
        InputError: as ``evaluate_on_pairs`` and ``evaluate_on_pack``.
    """
    reports = []
    for data in sets:
        if on_set is not None:
            on_set(data)
        reports.append(
            evaluate_set(
                embed,
                data,
                image_size=image_size,
                batch_size=batch_size,
                use_flipped_images=use_flipped_images,
                distance_metric=distance_metric,
                subtract_mean=subtract_mean,
                far_target=far_target,
                strict=strict,
                on_start=on_start,
                on_batch=on_batch,
                cache=None if caches is None else caches.get(data.name),
            )
        )
    return reports


def benchmark_scalars(reports: Sequence[BenchmarkReport]) -> dict[str, float]:
    """The event scalars of the reports: ``benchmark/<figure>/<name>`` (finite values only)."""
    out: dict[str, float] = {}
    for b in reports:
        r = b.report.result
        values = {
            ev.BENCH_ACCURACY: r.accuracy_mean,
            ev.BENCH_ACCURACY_STD: r.accuracy_std,
            ev.BENCH_VAL_RATE: r.val_mean,
            ev.BENCH_FAR: r.far_mean,
            ev.BENCH_AUC: r.auc,
            ev.BENCH_EER: r.eer,
            ev.BENCH_THRESHOLD: r.threshold,
            ev.BENCH_TIME: b.report.embedding_seconds,
        }
        for base, value in values.items():
            if math.isfinite(value):
                out[ev.benchmark_tag(base, b.name)] = float(value)
    return out


def benchmark_rows(reports: Sequence[BenchmarkReport]) -> list[tuple[str, ...]]:
    """The table's rows: benchmark, pairs, accuracy, VAL@FAR, AUC, EER, threshold."""
    rows: list[tuple[str, ...]] = []
    for b in reports:
        r = b.report.result
        val = (
            "unreachable"
            if r.nrof_unreachable_folds == r.nrof_folds
            else f"{r.val_mean:.4f} @ {r.far_mean:.4f}"
        )
        rows.append(
            (
                b.title,
                str(b.report.nrof_pairs_used),
                f"{r.accuracy_mean:.4f} ± {r.accuracy_std:.4f}",
                val,
                f"{r.auc:.4f}",
                f"{r.eer:.4f}",
                f"{r.threshold:.3f}",
            )
        )
    return rows


BENCHMARK_COLUMNS = ("benchmark", "pairs", "accuracy", "VAL @ FAR", "AUC", "EER", "threshold")
