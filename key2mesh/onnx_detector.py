"""YOLO-pose through ONNX Runtime directly, the fast CPU path for ``.onnx`` detectors.

Two costs go away against ultralytics on the shared int8 QDQ export: the int8 graph itself
(ONNX Runtime's CPU kernels run its quantise/dequantise pairs slower than plain fp32), which is
converted once into an fp32 graph cached under ``artifacts/detectors/``, and ultralytics'
per-call overhead. Letterbox, NMS and keypoint decoding are a few lines of numpy and OpenCV.

Rectangular inputs (``rect``, the default): an image is letterboxed to the smallest multiple of
32 around it at the asked long side (a 4:3 frame at 640 runs 640x480, not 640x640 of which a
quarter is padding), as ultralytics does for its own PyTorch models. A fixed-size export cannot
take that shape as it is: the head's size-dependent constants are rewritten for it
(``exact_head_for_shape``), once per image shape, and cached. A camera's frames all share one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
LETTERBOX_FILL = 114  # ultralytics' grey padding


def _dequantized(initializer, scale, zero_point, axis: int) -> np.ndarray:
    from onnx import numpy_helper

    x = numpy_helper.to_array(initializer).astype(np.float32)
    s = numpy_helper.to_array(scale).astype(np.float32)
    z = numpy_helper.to_array(zero_point).astype(np.float32) if zero_point is not None else np.zeros_like(s)
    if s.ndim == 1 and s.size > 1:  # per-channel along ``axis``
        shape = [1] * x.ndim
        shape[axis] = s.size
        s, z = s.reshape(shape), z.reshape(shape)
    return (x - z) * s


def dequantize_onnx(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write an fp32 copy of a QDQ-quantised ONNX model: quantised weights are dequantised
    into float initializers, and activation quantise/dequantise pairs are removed (they only
    round values; the fp32 graph keeps the trained weights exactly as the int8 graph sees them)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    rename: dict[str, str] = {}  # tensor -> what replaces it
    keep, new_inits = [], []
    producers = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zero = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            value = _dequantized(inits[node.input[0]], inits[node.input[1]], zero, axis)
            new_inits.append(numpy_helper.from_array(value, node.output[0]))
        elif node.op_type == "DequantizeLinear" and producers.get(node.input[0]) is not None \
                and producers[node.input[0]].op_type == "QuantizeLinear":
            rename[node.output[0]] = producers[node.input[0]].input[0]
        elif node.op_type == "QuantizeLinear":
            continue  # its consumers were DequantizeLinear nodes, rewired above
        else:
            keep.append(node)

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for node in keep:
        for i, name in enumerate(node.input):
            node.input[i] = resolve(name)
    for output in graph.output:
        output.name = resolve(output.name)
    used = {name for node in keep for name in node.input}
    kept_inits = [t for t in graph.initializer if t.name in used] + [t for t in new_inits if t.name in used]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, dst)
    return dst


STRIDES = (8, 16, 32)


def _anchors(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO grid cell centres ``[2,N]`` (x, y) and their strides ``[N]`` for a ``height x width``
    input, in the head's order: stride 8 first, rows of x within each level."""
    points, strides = [], []
    for stride in STRIDES:
        rows, cols = height // stride, width // stride
        y, x = np.meshgrid(np.arange(rows) + 0.5, np.arange(cols) + 0.5, indexing="ij")
        points.append(np.stack([x.reshape(-1), y.reshape(-1)]))
        strides.append(np.full(rows * cols, float(stride)))
    return np.concatenate(points, 1).astype(np.float32), np.concatenate(strides).astype(np.float32)


def exact_head_for_shape(model, height: int, width: int, trained_size: int = 640) -> None:
    """Rewrite, in place, the constants of a YOLO pose head that depend on the input shape: the
    grid cell centres and strides that decode boxes and keypoints (exact values: the int8 export
    had quantised them, moving keypoints by up to a few pixels), the flattened anchor count in
    reshapes, and the stride-32 attention block's grid. Both sides must be multiples of 32."""
    from onnx import numpy_helper

    if height % 32 or width % 32:
        raise ValueError(f"detector input size must be a multiple of 32, got {height}x{width}")
    old_count = sum((trained_size // s) ** 2 for s in STRIDES)
    old_cells, rows, cols = trained_size // 32, height // 32, width // 32
    count = sum((height // s) * (width // s) for s in STRIDES)
    centres, strides = _anchors(height, width)
    graph = model.graph
    reshape_shapes = {node.input[1] for node in graph.node if node.op_type == "Reshape"}
    for index, tensor in enumerate(graph.initializer):
        value = numpy_helper.to_array(tensor)
        replacement = None
        if tensor.name in reshape_shapes and value.dtype == np.int64:
            shape = value.copy()
            shape[shape == old_count] = count
            shape[shape == old_cells * old_cells] = rows * cols
            if shape.size == 4 and shape[2] == old_cells and shape[3] == old_cells:
                shape[2:] = rows, cols
            replacement = shape
        elif value.ndim and value.shape[-1] == old_count and value.dtype == np.float32:
            if value.shape == (1, 2, old_count):  # cell centres
                replacement = centres[None]
            elif value.shape == (2, old_count):  # keypoints decode from the cell corner: centres - 0.5
                replacement = centres - 0.5
            elif value.shape == (1, old_count):  # strides
                replacement = strides[None]
        if replacement is not None:
            graph.initializer[index].CopyFrom(numpy_helper.from_array(replacement.astype(value.dtype), tensor.name))
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = height, width
    graph.output[0].type.tensor_type.shape.dim[2].dim_value = count
    del graph.value_info[:]


def exact_head_for_size(model, size: int, trained_size: int = 640) -> None:
    """:func:`exact_head_for_shape` for a square ``size x size`` input."""
    exact_head_for_shape(model, size, size, trained_size)


def input_shape(image_hw: tuple[int, int], size: int, rect: bool) -> tuple[int, int]:
    """The detector input ``(height, width)`` for an image: ``size x size``, or with ``rect`` the
    smallest multiple of 32 around the image scaled to a long side of ``size``."""
    if not rect:
        return size, size
    scale = size / max(image_hw)
    return tuple(int(np.ceil(round(side * scale) / 32) * 32) for side in image_hw)


def prepared_detector(path: str | os.PathLike, cache_dir: str | os.PathLike,
                      size: int | tuple[int, int] | None = None) -> Path:
    """The graph to run for ``path`` at input ``size`` (a side, ``(height, width)``, or None: its
    own), made once and cached: a quantised graph becomes fp32 (``dequantize_onnx``), and the
    head's shape-dependent constants are made exact (``exact_head_for_shape``). An fp32 graph
    at its own size is used as it is."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    own = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value
    height, width = (size, size) if isinstance(size, int) else size or (own, own)
    quantized = any(node.op_type == "DequantizeLinear" for node in model.graph.node)
    if not quantized and (height, width) == (own, own):
        return path
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    name = f"{height}" if height == width else f"{height}x{width}"
    cached = Path(cache_dir) / f"{path.stem}-{digest}-fp32-{name}.onnx"
    if cached.exists():
        return cached
    log.info("preparing detector %s for ONNX Runtime at %dx%d px (once): %s", path, height, width, cached)
    fp32 = cached.with_name(cached.stem + ".fp32.tmp.onnx")
    try:
        dequantize_onnx(path, fp32) if quantized else fp32.write_bytes(path.read_bytes())
        model = onnx.load(str(fp32))
        exact_head_for_shape(model, height, width, trained_size=own)
        onnx.checker.check_model(model)
        tmp = cached.with_name(cached.name + ".tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, cached)
    finally:
        fp32.unlink(missing_ok=True)
    return cached


def letterbox(rgb: np.ndarray, size: int | tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """``[1,3,height,width]`` float32 input in [0,1] (``size``: a side or ``(height, width)``;
    aspect kept, grey padding), the scale and the padding ``(left, top)`` to map detections back
    to the image."""
    import cv2

    height, width = (size, size) if isinstance(size, int) else size
    h, w = rgb.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = min(round(h * scale), height), min(round(w * scale), width)
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else rgb
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas = np.full((height, width, 3), LETTERBOX_FILL, np.uint8)
    canvas[top : top + nh, left : left + nw] = resized
    tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32) * (1.0 / 255.0)
    return tensor, scale, (left, top)


def decode(output: np.ndarray, confidence: float, max_people: int, scale: float, pad: tuple[float, float],
           iou: float = 0.7):
    """YOLO-pose output ``[1,56,N]`` (box cx cy w h, person score, 17 x (x, y, conf)) -> boxes
    ``[P,4]`` xyxy, scores ``[P]``, keypoints ``[P,17,3]`` in image pixels, best first."""
    import cv2

    pred = output[0].T  # [N,56]
    keep = pred[:, 4] >= confidence
    pred = pred[keep]
    if len(pred) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 17, 3), np.float32)
    cx, cy, bw, bh = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
    # Class-agnostic NMS over every candidate (OpenCV's top_k would cut candidates before suppression).
    chosen = cv2.dnn.NMSBoxes(np.stack([boxes[:, 0], boxes[:, 1], bw, bh], -1).tolist(), pred[:, 4].tolist(),
                              confidence, iou)
    chosen = np.asarray(chosen, dtype=np.int64).reshape(-1)[:max_people]
    offset = np.array([pad[0], pad[1]], np.float32)
    boxes = (boxes[chosen].reshape(-1, 2, 2) - offset) / scale
    keypoints = pred[chosen, 5:].reshape(-1, 17, 3).copy()
    keypoints[..., :2] = (keypoints[..., :2] - offset) / scale
    scores = pred[chosen, 4]
    order = np.argsort(-scores)
    return boxes.reshape(-1, 4)[order].astype(np.float32), scores[order].astype(np.float32), keypoints[order]


class OnnxPoseDetector:
    """A YOLO-pose ``.onnx`` run by ONNX Runtime, fp32, without ultralytics in the loop.

    ``image_size`` is the input's long side; with ``rect`` each image shape gets its own
    rectangular graph (prepared and cached on first sight), else every image runs square."""

    def __init__(self, path: str | os.PathLike, confidence: float = 0.3, max_people: int = 20, threads: int = 0,
                 image_size: int | None = None, cache_dir: str | os.PathLike | None = None, rect: bool = True,
                 spinning: bool = False) -> None:
        import onnx

        from key2mesh.paths import detector_cache

        source = Path(path)
        self.cache_dir = Path(cache_dir or detector_cache())
        own = onnx.load(str(source), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        if not (own[2].dim_value and own[2].dim_value == own[3].dim_value):
            raise ValueError(f"{source}: expected a fixed square input, got {own}")
        self.image_size = int(image_size or own[2].dim_value)
        if self.image_size % 32:
            raise ValueError(f"detector input size must be a multiple of 32, got {self.image_size}")
        self.threads = threads or (os.cpu_count() or 1)
        self.path, self.rect, self.spinning = str(source), rect, spinning
        self.confidence, self.max_people = confidence, max_people
        self.sessions: dict[tuple[int, int], object] = {}  # input (height, width) -> session
        self.models: dict[tuple[int, int], Path] = {}  # and the graph it runs
        self.session = self._session((self.image_size, self.image_size))  # checks the graph now, not mid-stream
        self.model = self.models[(self.image_size, self.image_size)]
        prepared = "fp32 graph prepared from " if self.model != source else ""
        self.description = f"ONNX Runtime, {prepared}{source.name}, {self.image_size}x{self.image_size}" + \
            (" (rectangular per image shape)" if rect else "") + f", {self.threads} threads" + \
            (", spinning within runs" if spinning else "")

    def _session(self, shape: tuple[int, int]):
        if shape not in self.sessions:
            import onnxruntime as ort

            from key2mesh.onnxruntime_options import session_options

            model = prepared_detector(self.path, self.cache_dir, shape)
            options = session_options(self.threads, self.spinning, optimize=True)
            options.log_severity_level = 3
            self.sessions[shape] = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            self.models[shape] = model
        return self.sessions[shape]

    def raw(self, rgb: np.ndarray):
        shape = input_shape(rgb.shape[:2], self.image_size, self.rect)
        session = self._session(shape)
        tensor, scale, pad = letterbox(rgb, shape)
        output = session.run(None, {session.get_inputs()[0].name: tensor})[0]
        return decode(output, self.confidence, self.max_people + 1, scale, pad)
