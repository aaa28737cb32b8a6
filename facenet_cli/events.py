"""TensorFlow-free event-file knowledge shared by ``train`` (writer) and ``board`` (reader).

The scalar tag names live here, once. This module must never import TensorFlow or Keras:
the dashboard imports it.
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


def gpu_tag(base: str, device: str) -> str:
    """Per-device memory tag, e.g. ``gpu_tag(GPU_MEMORY_PEAK_MB, "GPU:0")``."""
    return f"{base}/{device}"


EVENT_FILE_GLOB = "events.out.tfevents.*"
