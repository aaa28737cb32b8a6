"""Scalar tag names: the one place train writes them from and the board reads them by.

TensorFlow-free and import-light (the CLI and the dashboard import it at start-up).
"""

from __future__ import annotations

# Training, one value per global step.
LOSS = "loss"
LEARNING_RATE = "learning_rate"
TRIPLETS_SELECTED = "triplets/selected"
TRIPLETS_PAIRS = "triplets/pairs"
TRIPLETS_ACTIVE_FRACTION = "triplets/active_fraction"
TRIPLETS_POS_DIST = "triplets/pos_dist"
TRIPLETS_NEG_DIST = "triplets/neg_dist"
TIME_SELECTION = "time/selection"
TIME_STEP = "time/step"
TIME_DATA_WAIT = "time/data_wait"
TIME_SAVE_VARIABLES = "time/save_variables"
IMAGES_PER_SEC = "perf/images_per_sec"
LOSS_SCALE = "perf/loss_scale"
EPOCH = "epoch"
TOTAL_STEPS = "progress/total_steps"  # planned steps (log once); the board shows an ETA

# Memory: per GPU (``gpu/memory_current_mb/GPU:0``) or, without a GPU, the host's RSS.
GPU_MEMORY_CURRENT_MB = "gpu/memory_current_mb"
GPU_MEMORY_PEAK_MB = "gpu/memory_peak_mb"
HOST_RSS_MB = "host/rss_mb"

# Evaluation, one value per evaluation (at the global step it ran).
LFW_ACCURACY = "lfw/accuracy"
LFW_ACCURACY_STD = "lfw/accuracy_std"
LFW_VAL_RATE = "lfw/val_rate"
LFW_FAR = "lfw/far"
LFW_AUC = "lfw/auc"
LFW_EER = "lfw/eer"
TIME_LFW = "time/lfw"

# Named benchmarks (``validate --benchmark``, the trainer's multi-benchmark evaluation), one
# value per evaluation: ``<base>/<benchmark>``, e.g. ``benchmark/accuracy/cfp_fp``.
BENCH_ACCURACY = "benchmark/accuracy"
BENCH_ACCURACY_STD = "benchmark/accuracy_std"
BENCH_VAL_RATE = "benchmark/val_rate"
BENCH_FAR = "benchmark/far"
BENCH_AUC = "benchmark/auc"
BENCH_EER = "benchmark/eer"
BENCH_THRESHOLD = "benchmark/threshold"
BENCH_TIME = "benchmark/seconds"
BENCHMARK_FAMILIES = (
    BENCH_ACCURACY,
    BENCH_ACCURACY_STD,
    BENCH_VAL_RATE,
    BENCH_FAR,
    BENCH_AUC,
    BENCH_EER,
    BENCH_THRESHOLD,
    BENCH_TIME,
)

TRAIN_TAGS = (
    LOSS,
    LEARNING_RATE,
    TRIPLETS_SELECTED,
    TRIPLETS_PAIRS,
    TRIPLETS_ACTIVE_FRACTION,
    TRIPLETS_POS_DIST,
    TRIPLETS_NEG_DIST,
    TIME_SELECTION,
    TIME_STEP,
    TIME_DATA_WAIT,
    IMAGES_PER_SEC,
)
LFW_TAGS = (LFW_ACCURACY, LFW_ACCURACY_STD, LFW_VAL_RATE, LFW_FAR, LFW_AUC, LFW_EER, TIME_LFW)

# Classifier (softmax-family) training and its validation split, one value per step or epoch.
CLS_CROSS_ENTROPY = "classifier/cross_entropy"
CLS_CENTER_LOSS = "classifier/center_loss"
CLS_REGULARIZATION = "classifier/regularization"
CLS_ACCURACY = "classifier/accuracy"
CLS_PRELOGITS_NORM = "classifier/prelogits_norm"
VAL_LOSS = "validation/loss"
VAL_ACCURACY = "validation/accuracy"

CLASSIFIER_TAGS = (
    CLS_CROSS_ENTROPY,
    CLS_CENTER_LOSS,
    CLS_REGULARIZATION,
    CLS_ACCURACY,
    CLS_PRELOGITS_NORM,
    VAL_LOSS,
    VAL_ACCURACY,
)


def benchmark_tag(base: str, benchmark: str) -> str:
    """Per-benchmark tag, e.g. ``benchmark_tag(BENCH_ACCURACY, "cfp_fp")``."""
    return f"{base}/{benchmark}"


def gpu_tag(base: str, device: str) -> str:
    """Per-device memory tag, e.g. ``gpu_tag(GPU_MEMORY_PEAK_MB, "GPU:0")``."""
    return f"{base}/{device}"
