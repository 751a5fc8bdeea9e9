"""Latency of the fused keypoints-to-mesh graph per backend (median and p90), and the
speed-up over the optimisation baseline, measured in one run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from key2mesh.backends import BACKEND_ORDER, BackendUnavailable, backend_status, create_backend
from key2mesh.keypoints import NUM_KEYPOINTS


def random_inputs(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.empty((batch, NUM_KEYPOINTS, 3), np.float32)
    kp[..., :2] = rng.uniform(0.1, 0.9, (batch, NUM_KEYPOINTS, 2))
    kp[..., 2] = 1.0
    return kp


def time_backend(backend, batch: int, repeats: int = 50, warmup: int = 5) -> tuple[float, float]:
    inputs = random_inputs(batch)
    for _ in range(warmup):
        backend.run(inputs)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.run(inputs)
        samples.append((time.perf_counter() - start) * 1000)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def smplify_ms_per_person(checkpoint_free_people: int = 8, iterations: int = 150) -> float:
    from key2mesh.body_model import load_skinned_body
    from key2mesh.rotations import axis_angle_to_matrix
    from key2mesh_train.evaluation.smplify import PosePrior, SMPLifyConfig, fit_smplify

    body = load_skinned_body()
    rest = axis_angle_to_matrix(0.2 * torch.randn(64, 24, 3))
    prior = PosePrior(rest)
    inputs = torch.from_numpy(random_inputs(checkpoint_free_people))
    start = time.perf_counter()
    fit_smplify(inputs, body, prior, SMPLifyConfig(iterations=iterations))
    return (time.perf_counter() - start) * 1000 / checkpoint_free_people


def run_latency(onnx_path: str | Path, checkpoint: str | Path, batches=(1, 5, 64), repeats: int = 50,
                threads: int = 0) -> dict:
    torch.set_num_threads(threads or torch.get_num_threads())
    results: dict[str, dict[int, tuple[float, float]]] = {}
    skipped: dict[str, str] = {}
    status = backend_status()
    for name in BACKEND_ORDER:
        ok, reason = status[name]
        if not ok:
            skipped[name] = reason
            continue
        # ONNX Runtime twice: the fp32 graph and its int8 copy (node parameter graph_int8).
        for int8 in (False, True) if name == "onnxruntime" else (False,):
            try:
                backend = create_backend(name, onnx_path=onnx_path, checkpoint=checkpoint, threads=threads, int8=int8)
            except BackendUnavailable as err:
                skipped[name] = str(err)
                break
            label = f"{name}{' int8' if int8 else ''} ({backend.provider})"
            results[label] = {b: time_backend(backend, b, repeats) for b in batches}
    baseline = smplify_ms_per_person()
    return {"results": results, "skipped": skipped, "smplify_ms_per_person": baseline}


def format_latency(report: dict) -> str:
    batches = sorted({b for r in report["results"].values() for b in r})
    head = f"{'backend':<42}" + "".join(f"{'B=' + str(b) + ' med/p90 ms':>22}" for b in batches) + f"{'speed-up B=1':>16}"
    lines = [head]
    base = report["smplify_ms_per_person"]
    for name, per_batch in report["results"].items():
        cells = "".join(f"{per_batch[b][0]:>12.3f}/{per_batch[b][1]:<9.3f}" for b in batches)
        lines.append(f"{name:<42}{cells}{base / per_batch[batches[0]][0]:>15.0f}x")
    lines.append(f"{'SMPLify-style optim. (per person)':<42}{base:>12.1f} ms")
    for name, reason in report["skipped"].items():
        lines.append(f"{name}: skipped ({reason})")
    return "\n".join(lines)
