"""Synthetic benchmark: held-out motion, detector-like 2D noise, Key2Mesh vs SMPLify.

Accuracy and speed are measured in one run on the same inputs and printed as a table; a
bar chart goes next to the checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from key2mesh.checkpoint import load_checkpoint
from key2mesh_train.config import TrainConfig
from key2mesh_train.evaluation.evaluate import posed_body, score
from key2mesh_train.evaluation.smplify import PosePrior, SMPLifyConfig, fit_smplify
from key2mesh_train.pretrain import prepare_data, sample_batch
from key2mesh_train.synthetic import synthesize


def format_table(rows: dict[str, dict[str, float]]) -> str:
    columns = ["MPJPE", "PA-MPJPE", "PVE", "ms/person"]
    lines = [f"{'method':<22}" + "".join(f"{c:>12}" for c in columns)]
    for name, values in rows.items():
        lines.append(f"{name:<22}" + "".join(f"{values.get(c, float('nan')):>12.2f}" for c in columns))
    return "\n".join(lines)


def run_benchmark(config: TrainConfig, checkpoint: str | Path, people: int = 128, smplify_people: int = 32,
                  smplify_iterations: int = 150, plot: str | Path | None = None, seed: int = 123) -> dict:
    torch.manual_seed(seed)
    body, train_bank, held_out = prepare_data(config, progress=False)
    network, _ = load_checkpoint(checkpoint)
    gen = torch.Generator().manual_seed(seed)
    rotmats, betas = sample_batch(held_out, people, gen)
    batch = synthesize(rotmats, betas, body, config.synthetic, gen, noise=config.benchmark_noise, with_vertices=True)
    gt_joints, gt_vertices = batch["joints3d"], batch["vertices"]

    with torch.no_grad():
        network(batch["input"][:8])  # warm-up
        start = time.perf_counter()
        for i in range(people):  # one person at a time: the robot's latency case
            network(batch["input"][i : i + 1])
        k2m_ms = (time.perf_counter() - start) * 1000 / people
        pred = network(batch["input"])
        joints, vertices = posed_body(body, pred["betas"], pred["rotmats"])
    rows = {"Key2Mesh (torch)": {**score(joints, gt_joints, vertices, gt_vertices), "ms/person": k2m_ms}}
    sub = slice(0, smplify_people)
    rows["Key2Mesh (same subset)"] = {
        **score(joints[sub], gt_joints[sub], vertices[sub], gt_vertices[sub]), "ms/person": k2m_ms}

    prior = PosePrior(train_bank.rotmats[:: max(1, len(train_bank) // 2000)])
    start = time.perf_counter()
    fit = fit_smplify(batch["input"][sub], body, prior, SMPLifyConfig(iterations=smplify_iterations))
    smplify_ms = (time.perf_counter() - start) * 1000 / smplify_people
    s_joints, s_vertices = posed_body(body, fit["betas"], fit["rotmats"])
    rows["SMPLify-style optim."] = {
        **score(s_joints, gt_joints[sub], s_vertices, gt_vertices[sub]), "ms/person": smplify_ms}
    result = {"rows": rows, "speedup": smplify_ms / k2m_ms, "people": people, "smplify_people": smplify_people}
    if plot:
        save_plot(rows, plot)
    return result


def save_plot(rows: dict[str, dict[str, float]], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_err, ax_time) = plt.subplots(1, 2, figsize=(10, 4))
    metrics = ["MPJPE", "PA-MPJPE", "PVE"]
    width = 0.8 / len(rows)
    for i, (name, values) in enumerate(rows.items()):
        ax_err.bar([m + i * width for m in range(len(metrics))], [values[k] for k in metrics], width, label=name)
    ax_err.set_xticks([m + width * (len(rows) - 1) / 2 for m in range(len(metrics))], metrics)
    ax_err.set_ylabel("error (mm)")
    ax_err.legend(fontsize=8)
    ax_time.bar(list(rows), [v["ms/person"] for v in rows.values()], color="gray")
    ax_time.set_yscale("log")
    ax_time.set_ylabel("ms / person (log)")
    ax_time.tick_params(axis="x", labelrotation=20, labelsize=7)
    fig.suptitle("Held-out motion, detector-like 2D noise")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
