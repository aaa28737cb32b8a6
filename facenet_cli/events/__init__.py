"""TensorFlow-free event-file knowledge shared by ``train`` (writer) and ``board`` (reader).

One job per module:

- :mod:`~facenet_cli.events.tags`: the scalar tag names, once;
- :mod:`~facenet_cli.events.records`: TFRecord framing and its masked CRC-32C;
- :mod:`~facenet_cli.events.decode`: event records to scalar points (vectorised, protobuf fallback);
- :mod:`~facenet_cli.events.runs`: what has been read of a run (series, file cursors, state);
- :mod:`~facenet_cli.events.reader`: the log-directory reader and train's run markers;
- :mod:`~facenet_cli.events.writer`: the one event writer (train, tests, benchmarks).

Everything is re-exported here (``from facenet_cli.events import LOSS, LogdirReader``). Nothing
in this package imports TensorFlow or Keras; the protobuf classes load on first use.
"""

from facenet_cli.events.decode import EventParser, tensor_scalar
from facenet_cli.events.reader import (
    EVENT_FILE_GLOB,
    EVENT_FILE_PREFIX,
    FAILED_MARKER,
    FINISHED_MARKER,
    READ_CHUNK,
    LogdirReader,
)
from facenet_cli.events.records import RecordScan, frame_record, masked_crc32c, split_records
from facenet_cli.events.runs import DEFAULT_POINT_CAP, FileCursor, RunState, ScalarSeries
from facenet_cli.events.tags import (
    CLASSIFIER_TAGS,
    CLS_ACCURACY,
    CLS_CENTER_LOSS,
    CLS_CROSS_ENTROPY,
    CLS_PRELOGITS_NORM,
    CLS_REGULARIZATION,
    EPOCH,
    GPU_MEMORY_CURRENT_MB,
    GPU_MEMORY_PEAK_MB,
    HOST_RSS_MB,
    IMAGES_PER_SEC,
    LEARNING_RATE,
    LFW_ACCURACY,
    LFW_ACCURACY_STD,
    LFW_AUC,
    LFW_EER,
    LFW_FAR,
    LFW_TAGS,
    LFW_VAL_RATE,
    LOSS,
    LOSS_SCALE,
    TIME_DATA_WAIT,
    TIME_LFW,
    TIME_SAVE_VARIABLES,
    TIME_SELECTION,
    TIME_STEP,
    TOTAL_STEPS,
    TRAIN_TAGS,
    TRIPLETS_ACTIVE_FRACTION,
    TRIPLETS_NEG_DIST,
    TRIPLETS_PAIRS,
    TRIPLETS_POS_DIST,
    TRIPLETS_SELECTED,
    VAL_ACCURACY,
    VAL_LOSS,
    gpu_tag,
)
from facenet_cli.events.writer import EventWriter

__all__ = [
    "CLASSIFIER_TAGS",
    "CLS_ACCURACY",
    "CLS_CENTER_LOSS",
    "CLS_CROSS_ENTROPY",
    "CLS_PRELOGITS_NORM",
    "CLS_REGULARIZATION",
    "DEFAULT_POINT_CAP",
    "EPOCH",
    "EVENT_FILE_GLOB",
    "EVENT_FILE_PREFIX",
    "FAILED_MARKER",
    "FINISHED_MARKER",
    "GPU_MEMORY_CURRENT_MB",
    "GPU_MEMORY_PEAK_MB",
    "HOST_RSS_MB",
    "IMAGES_PER_SEC",
    "LEARNING_RATE",
    "LFW_ACCURACY",
    "LFW_ACCURACY_STD",
    "LFW_AUC",
    "LFW_EER",
    "LFW_FAR",
    "LFW_TAGS",
    "LFW_VAL_RATE",
    "LOSS",
    "LOSS_SCALE",
    "READ_CHUNK",
    "TIME_DATA_WAIT",
    "TIME_LFW",
    "TIME_SAVE_VARIABLES",
    "TIME_SELECTION",
    "TIME_STEP",
    "TOTAL_STEPS",
    "TRAIN_TAGS",
    "TRIPLETS_ACTIVE_FRACTION",
    "TRIPLETS_NEG_DIST",
    "TRIPLETS_PAIRS",
    "TRIPLETS_POS_DIST",
    "TRIPLETS_SELECTED",
    "VAL_ACCURACY",
    "VAL_LOSS",
    "EventParser",
    "EventWriter",
    "FileCursor",
    "LogdirReader",
    "RecordScan",
    "RunState",
    "ScalarSeries",
    "frame_record",
    "gpu_tag",
    "masked_crc32c",
    "split_records",
    "tensor_scalar",
]
