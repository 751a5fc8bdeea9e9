"""An int8 copy of the fused graph for robots without a GPU (ONNX Runtime on CPU).

The network's hidden matrix products are quantised (ONNX Runtime's dynamic quantisation: int8
weights per output channel, activations quantised per batch at run time). Its first product
(keypoints in) and last (rotations and shape out) stay fp32, and so does the SMPL skinning.
Measured on the shipped model: quantising every product moved the held-out benchmark from
105.3 / 65.3 to 106.6 / 66.2 mm (MPJPE / PA-MPJPE) and real detections from 86.5 to 89.0 mm
PA-MPJPE, some people by over 15 cm; with the first and last products in fp32 both stay at
105.3 / 65.3 and 123.5 / 86.5 mm (each person within 8.1 mm of the fp32 graph), and the graph
still runs about 1.45x faster on 2 CPU cores at batch 4. The node runs it on ONNX Runtime by
default (parameter ``graph_int8``); TensorRT builds its engine from the fp32 graph.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from key2mesh.export import body_sidecar_path, file_sha256, graph_metadata

PRECISION_KEY = "key2mesh_precision"
SOURCE_KEY = "key2mesh_int8_source_sha256"  # the fp32 graph a copy was made from


def int8_path(onnx_path: str | os.PathLike) -> Path:
    """Where the int8 copy of ``onnx_path`` lives: ``key2mesh.onnx`` -> ``key2mesh.int8.onnx``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.int8.onnx")


def quantize_graph(onnx_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Write the int8 copy of the fp32 fused graph ``onnx_path`` (default: :func:`int8_path`),
    with its faces sidecar, through temporary files: never half a graph."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path} (run 'key2mesh-train export')")
    out_path = Path(out_path) if out_path else int8_path(onnx_path)
    proto = onnx.load(str(onnx_path), load_external_data=False)
    if any(p.key == PRECISION_KEY for p in proto.metadata_props):
        raise ValueError(f"{onnx_path} is already quantised; give the fp32 export")
    keep = fp32_products(proto)
    # The quantiser turns a Gemm into a MatMul named <gemm>_MatMul before it looks at names.
    excluded = [node.name for node in proto.graph.node if not node.name.startswith("/network/")] + \
        keep + [name + "_MatMul" for name in keep]
    tmp = out_path.with_name(f"{out_path.name}.{os.getpid()}.tmp")  # per process: two nodes may start at once
    sidecar = body_sidecar_path(out_path)
    sidecar_tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.tmp")
    try:
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs a line per tensor on the root logger
        try:
            quantize_dynamic(str(onnx_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["Gemm", "MatMul"], nodes_to_exclude=excluded)
        finally:
            root.setLevel(level)
        quantized = onnx.load(str(tmp))
        products = int8_products(quantized)
        if not products or any(name.startswith(tuple(keep)) for name in products):
            raise RuntimeError("ONNX Runtime's quantiser did not follow the int8 recipe (network products in "
                               "int8, first and last in fp32); use the fp32 graph (graph_int8: false)")
        for key, value in ((PRECISION_KEY, "int8"), (SOURCE_KEY, file_sha256(onnx_path))):
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(quantized, str(tmp))
        shutil.copyfile(body_sidecar_path(onnx_path), sidecar_tmp)
        os.replace(sidecar_tmp, sidecar)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_tmp.unlink(missing_ok=True)
    return out_path


def fp32_products(proto) -> list[str]:
    """The network's first and last matrix products (nodes named ``/network/...``: the exporter's
    names), which the recipe keeps in fp32."""
    products = [node.name for node in proto.graph.node
                if node.op_type in ("Gemm", "MatMul") and node.name.startswith("/network/")]
    if len(products) < 3:
        raise ValueError("not a Key2Mesh fused graph: fewer than three network products")
    return [products[0], products[-1]]


def int8_products(proto) -> list[str]:
    """Names of the int8 matrix products in a graph."""
    return [node.name for node in proto.graph.node if node.op_type == "MatMulInteger"]


def ensure_int8_graph(onnx_path: str | os.PathLike) -> tuple[Path, bool]:
    """The int8 copy of ``onnx_path``, made again when missing or made from another fp32 graph
    (another checkpoint, graph version or file); a graph that is already int8 is its own copy.
    Returns ``(path, rebuilt)``."""
    if graph_metadata(onnx_path).get(PRECISION_KEY) == "int8":
        return Path(onnx_path), False
    out_path = int8_path(onnx_path)
    if out_path.exists() and body_sidecar_path(out_path).exists():
        if graph_metadata(out_path).get(SOURCE_KEY) == file_sha256(onnx_path):
            return out_path, False
    return quantize_graph(onnx_path, out_path), True
