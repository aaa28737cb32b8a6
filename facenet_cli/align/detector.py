"""MTCNN face detection, batched over images, with the P/R/O-Net weights of the `mtcnn` wheel.

The `mtcnn` package runs PNet once per pyramid scale and image, and R/O-Net once per image. Here
all pyramid levels of a whole batch of images are packed into a few mosaic canvases (PNet is fully
convolutional, so one call scores every level of every image; on a CPU, levels of large photos
are cut into overlapping tiles so that each canvas stays small), and the R-Net and O-Net candidates
of all images of the batch go through one call each. The arithmetic between the networks follows
the package (its normalisation, patch sampling, box regression and NMS rules), so boxes agree.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facenet_cli.align import geometry as geo
from facenet_cli.tf_quiet import quiet_tensorflow, quiet_unless_debug

# PNet canvas area by device (see ``MtcnnDetector``; ``python -m benchmarks align`` measures it).
GPU_CANVAS_PIXELS = 2_000_000
CPU_CANVAS_PIXELS = 512 * 512


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, best score first.

    Attributes:
        boxes: ``(N, 4)`` float ``x1 y1 x2 y2`` in original pixels (not clipped to the image).
        scores: ``(N,)`` ONet face probabilities.
        landmarks: ``(N, 5, 2)`` points (left eye, right eye, nose, mouth left, mouth right).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


def _empty() -> Detections:
    return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))


def import_tensorflow():  # type: ignore[no-untyped-def]
    """Import TensorFlow without its C++ start-up banner (unless ``--debug`` asks for it)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    quiet_tensorflow()
    import tensorflow as tf

    return tf


def _load_networks():  # type: ignore[no-untyped-def]
    """The three Keras networks of the `mtcnn` wheel with its shipped weights."""
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet
    from mtcnn.utils.tensorflow import load_weights

    nets = []
    for cls, weights in ((PNet, "pnet.lz4"), (RNet, "rnet.lz4"), (ONet, "onet.lz4")):
        net = cls()
        net.build()
        # The wheel's own loader for its own bundled assets (joblib files).
        net.set_weights(load_weights(weights))
        nets.append(net)
    return nets


class MtcnnDetector:
    """Batched MTCNN.

    Args:
        min_face_size: smallest face searched for, px.
        thresholds: P-Net, R-Net, O-Net score thresholds.
        factor: pyramid scale factor.
        max_canvas_pixels: area of one PNet mosaic canvas; larger pyramid levels are cut into
            tiles that fit. ``None``: 2 MP on a GPU (few large calls), 256 kP on a CPU, where
            PNet runs several times faster per pixel on canvases whose activations stay in cache.
        max_batch_pixels: image area detected together (bounds the float image copies).
    """

    NMS_PNET_SCALE = 0.5
    NMS_PNET_ALL = 0.7
    NMS_RNET = 0.7
    NMS_ONET = 0.7

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        max_canvas_pixels: int | None = None,
        max_batch_pixels: int = 24_000_000,
    ) -> None:
        tf = import_tensorflow()

        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        if max_canvas_pixels is None:
            gpu = bool(tf.config.list_physical_devices("GPU"))
            max_canvas_pixels = GPU_CANVAS_PIXELS if gpu else CPU_CANVAS_PIXELS
        self.max_canvas_pixels = int(max_canvas_pixels)
        self.max_batch_pixels = int(max_batch_pixels)
        self._tf = tf
        pnet, rnet, onet = _load_networks()
        spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._pnet = tf.function(lambda x: pnet(x, training=False), input_signature=[spec])
        self._rnet = tf.function(
            lambda x: rnet(x, training=False),
            input_signature=[tf.TensorSpec([None, 24, 24, 3], tf.float32)],
        )
        self._onet = tf.function(
            lambda x: onet(x, training=False),
            input_signature=[tf.TensorSpec([None, 48, 48, 3], tf.float32)],
        )

    # ------------------------------------------------------------------------------ stages

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect faces in a batch of ``uint8`` RGB ``(H, W, 3)`` images of any sizes.

        Large photos are taken in consecutive groups of at most ``max_batch_pixels`` pixels, so
        the float copies stay bounded; the grouping depends only on the image sizes, so a batch
        always gives the same boxes.
        """
        out: list[Detections] = []
        group: list[np.ndarray] = []
        pixels = 0
        for im in images:
            size = int(im.shape[0]) * int(im.shape[1])
            if group and pixels + size > self.max_batch_pixels:
                out += self._detect_group(group)
                group, pixels = [], 0
            group.append(im)
            pixels += size
        if group:
            out += self._detect_group(group)
        return out

    def _detect_group(self, images: Sequence[np.ndarray]) -> list[Detections]:
        tf = self._tf
        # The networks see (pixel - 127.5) / 128. Area resizing and bilinear patch sampling are
        # linear, so they run on the uint8 pixels and their (much smaller) outputs are normalised:
        # no float copy of a whole photo is ever made.
        pixels = [tf.constant(np.asarray(im, np.uint8)) for im in images]
        cands = self._stage_pnet(pixels)
        cands = self._stage_refine(pixels, cands, stage=1)
        return self._stage_output(pixels, cands)

    def _stage_pnet(self, pixels: list) -> list[np.ndarray]:  # type: ignore[type-arg]
        """PNet over all pyramid levels of all images: square candidate boxes per image."""
        tf = self._tf
        levels: list[tuple[int, float, tuple[int, int]]] = []  # (image, scale, shape)
        for i, im in enumerate(pixels):
            h, w = int(im.shape[0]), int(im.shape[1])
            for s in geo.pyramid_scales(h, w, self.min_face_size, self.factor):
                shape = geo.level_shape(h, w, s)
                if geo.pnet_cells(shape[0]) > 0 and geo.pnet_cells(shape[1]) > 0:
                    levels.append((i, float(s), shape))
        side = max(int(np.sqrt(self.max_canvas_pixels)) // 2 * 2, 2 * geo.PNET_CELL)
        pieces = [(k, t) for k, lv in enumerate(levels) for t in geo.split_level(*lv[2], side)]
        placements, canvas_shapes = geo.pack_levels(
            [(t.height, t.width) for _, t in pieces], self.max_canvas_pixels
        )
        canvases = [np.zeros((ch, cw, 3), np.float32) for ch, cw in canvas_shapes]
        tiles_of: dict[int, list[int]] = {}
        for j, (k, _t) in enumerate(pieces):
            tiles_of.setdefault(k, []).append(j)
        # Images of one shape are resized together: one area-resize call per level size.
        by_key: dict[tuple[tuple[int, int], tuple[int, int]], list[int]] = {}
        for k, (i, _s, shape) in enumerate(levels):
            by_key.setdefault((tuple(pixels[i].shape[:2]), shape), []).append(k)
        for (_src, shape), ks in by_key.items():
            stack = tf.stack([pixels[levels[k][0]] for k in ks]) if len(ks) > 1 else None
            if stack is None:
                stack = pixels[levels[ks[0]][0]][None]
            resized = tf.image.resize(stack, shape, method="area").numpy()
            for k, img in zip(ks, resized, strict=True):
                for j in tiles_of[k]:
                    t, p = pieces[j][1], placements[j]
                    y, x = geo.PNET_STRIDE * t.row0, geo.PNET_STRIDE * t.col0
                    tile = img[y : y + t.height, x : x + t.width]
                    canvases[p.canvas][p.y : p.y + p.height, p.x : p.x + p.width] = (
                        tile - 127.5
                    ) / 128.0
        hits: list[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = [
            [] for _ in levels
        ]
        for c, canvas in enumerate(canvases):
            reg, prob = self._pnet(canvas[None])
            reg, prob = reg.numpy()[0], prob.numpy()[0, :, :, 1]
            for j, p in enumerate(placements):
                if p.canvas != c:
                    continue
                r0, c0 = p.y // 2, p.x // 2
                nh, nw = geo.pnet_cells(p.height), geo.pnet_cells(p.width)
                score = prob[r0 : r0 + nh, c0 : c0 + nw]
                rows, cols = np.nonzero(score > self.thresholds[0])
                if len(rows):
                    t = pieces[j][1]
                    hits[pieces[j][0]].append(
                        (
                            rows + t.row0,
                            cols + t.col0,
                            score[rows, cols],
                            reg[r0 + rows, c0 + cols],
                        )
                    )
        per_image: list[list[tuple[float, np.ndarray]]] = [[] for _ in pixels]
        for k, found in enumerate(hits):
            if not found:
                continue
            rows, cols, s, r = (np.concatenate(parts) for parts in zip(*found, strict=True))
            # Row-major order over the whole level, as one PNet call on the level would give, so
            # that equal scores keep the same order whatever the tiling.
            order = np.lexsort((cols, rows))
            rows, cols, s, r = rows[order], cols[order], s[order], r[order]
            boxes = geo.pnet_boxes(rows, cols, r, np.full(len(rows), levels[k][1]))
            order = np.argsort(-s, kind="stable")
            boxes, s = boxes[order], s[order]
            keep = geo.suppress(boxes, self.NMS_PNET_SCALE, "union")
            per_image[levels[k][0]].append((levels[k][1], np.hstack([boxes[keep], s[keep, None]])))
        out = []
        for found_levels in per_image:
            # Levels in pyramid order (largest scale first), as the package concatenates them.
            found_levels.sort(key=lambda t: -t[0])
            cand = (
                np.concatenate([f[1] for f in found_levels]) if found_levels else np.zeros((0, 5))
            )
            cand = cand[np.argsort(-cand[:, 4], kind="stable")]
            cand = cand[geo.suppress(cand[:, :4], self.NMS_PNET_ALL, "union")]
            cand[:, :4] = geo.square_boxes(cand[:, :4])
            out.append(cand)
        return out

    def _patches(self, pixels: list, cands: list[np.ndarray], size: int):  # type: ignore[no-untyped-def]
        """Bilinear ``size``-px patches of every candidate box, sampled as the package does."""
        tf = self._tf
        parts = []
        for im, rows in zip(pixels, cands, strict=True):
            if len(rows) == 0:
                continue
            h, w = float(im.shape[0]), float(im.shape[1])
            coords = (rows[:, [1, 0, 3, 2]] / np.array([h, w, h, w])).astype(np.float32)
            parts.append(
                tf.image.crop_and_resize(
                    im[None],
                    coords,
                    tf.zeros(len(rows), tf.int32),
                    (size, size),
                    # Outside the photo the package samples its normalised zero: pixel 127.5.
                    extrapolation_value=127.5,
                )
            )
        return (tf.concat(parts, axis=0) - 127.5) / 128.0

    def _stage_refine(self, pixels: list, cands: list[np.ndarray], stage: int) -> list[np.ndarray]:
        """RNet on all candidates of all images at once."""
        counts = [len(c) for c in cands]
        if sum(counts) == 0:
            return cands
        reg, prob = self._rnet(self._patches(pixels, cands, 24))
        reg, score = reg.numpy(), prob.numpy()[:, 1]
        out = []
        start = 0
        for rows, n in zip(cands, counts, strict=True):
            r, s = reg[start : start + n], score[start : start + n]
            start += n
            boxes = geo.regress_boxes(rows[:, :4], r)
            sel = s > self.thresholds[stage]
            boxes, s = boxes[sel], s[sel]
            order = np.argsort(-s, kind="stable")
            boxes, s = boxes[order], s[order]
            keep = geo.suppress(boxes, self.NMS_RNET, "union")
            out.append(np.hstack([geo.square_boxes(boxes[keep]), s[keep, None]]))
        return out

    def _stage_output(self, pixels: list, cands: list[np.ndarray]) -> list[Detections]:
        """ONet on all candidates of all images at once: final boxes and landmarks."""
        counts = [len(c) for c in cands]
        if sum(counts) == 0:
            return [_empty() for _ in cands]
        reg, points, prob = self._onet(self._patches(pixels, cands, 48))
        reg, points, score = reg.numpy(), points.numpy(), prob.numpy()[:, 1]
        out = []
        start = 0
        for rows, n in zip(cands, counts, strict=True):
            sl = slice(start, start + n)
            start += n
            if n == 0:
                out.append(_empty())
                continue
            marks = geo.onet_landmarks(rows[:, :4], points[sl])
            boxes = geo.regress_boxes(rows[:, :4], reg[sl])
            s = score[sl]
            sel = s > self.thresholds[2]
            boxes, s, marks = boxes[sel], s[sel], marks[sel]
            order = np.argsort(-s, kind="stable")
            boxes, s, marks = boxes[order], s[order], marks[order]
            keep = geo.suppress(boxes, self.NMS_ONET, "min")
            out.append(Detections(boxes[keep], s[keep], marks[keep]))
        return out


def configure_tensorflow(threads: int, gpu_memory_fraction: float = 1.0) -> None:
    """Thread pools for this process, and the GPU memory bound of ``--gpu-memory-fraction``.

    With a fraction below 1, each visible GPU gets a logical device limited to that share of its
    memory (total read through NVML when ``nvidia-ml-py`` is installed); without NVML, memory
    growth is switched on instead so the process takes only what it uses. Must run before
    TensorFlow executes anything in this process.
    """
    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(threads, 1))
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if gpu_memory_fraction < 1.0:
            for index, gpu in enumerate(tf.config.list_physical_devices("GPU")):
                total = _gpu_total_bytes(index)
                if total:
                    limit_mb = max(int(total * gpu_memory_fraction / 2**20), 256)
                    tf.config.set_logical_device_configuration(
                        gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit_mb)]
                    )
                else:
                    tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass  # already initialised in this process: keep what is there


def _gpu_total_bytes(index: int) -> int | None:
    try:
        import pynvml  # nvidia-ml-py, the optional `gpu` extra
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            return int(
                pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).total
            )
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None


_CACHE: dict[tuple[int, tuple[float, ...], float], MtcnnDetector] = {}


def shared_detector(
    min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709
) -> MtcnnDetector:
    """One detector per process and settings (building one loads weights and traces graphs)."""
    key = (int(min_face_size), tuple(float(t) for t in thresholds), float(factor))
    if key not in _CACHE:
        with quiet_unless_debug():
            detector = MtcnnDetector(*key)
            # The first call creates the devices and traces PNet (more start-up notices).
            detector.detect([np.zeros((min_face_size, min_face_size, 3), np.uint8)])
        _CACHE[key] = detector
    return _CACHE[key]
