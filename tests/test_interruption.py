"""An interrupted run never poses as a finished model: partial state beside the result,
refused by everything that expects a model, resumed to the same result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from key2mesh.checkpoint import UnfinishedCheckpointError, load_checkpoint, partial_path, save_checkpoint
from key2mesh.network import Key2MeshNet, NetworkConfig

CLI = [sys.executable, "-m", "key2mesh_train.cli"]


def _tiny(tmp_path, out, steps):
    return ["--config", "tiny.yaml", "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "data.mocap=[]",
            "--set", f"pretrain.steps={steps}", "--set", "pretrain.checkpoint_every=10", "--set", "pretrain.log_every=5",
            "--set", "pretrain.num_threads=1", "--out", str(out)]


def _interrupt_when(path, proc, timeout=120.0):
    """SIGINT ``proc`` once ``path`` exists; its exit code and stderr."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before writing {path}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_interrupted_pretraining_is_refused_then_resumed(tmp_path):
    steps = 400
    # The reference: the same seed, uninterrupted.
    reference = tmp_path / "reference.pt"
    subprocess.run(CLI + ["pretrain"] + _tiny(tmp_path, reference, steps), check=True, capture_output=True, timeout=300)

    final = tmp_path / "model.pt"
    proc = subprocess.Popen(CLI + ["pretrain"] + _tiny(tmp_path, final, steps), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    code, err = _interrupt_when(partial_path(final), proc)
    assert code == 130, err
    assert "--resume" in err.splitlines()[-1] and not final.exists()
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(UnfinishedCheckpointError, match=r"unfinished pretrain run \(step \d+ of 400\).*--resume"):
        load_checkpoint(partial_path(final))

    export = subprocess.run(CLI + ["export", "--checkpoint", str(partial_path(final)), "--out", str(tmp_path / "m.onnx")],
                            capture_output=True, text=True, timeout=120)
    assert export.returncode == 2 and not (tmp_path / "m.onnx").exists()
    assert len(export.stderr.strip().splitlines()) == 1 and "unfinished pretrain run" in export.stderr

    subprocess.run(CLI + ["pretrain", "--resume"] + _tiny(tmp_path, final, steps), check=True, capture_output=True,
                   timeout=300)
    assert final.exists() and not partial_path(final).exists()
    _, resumed = load_checkpoint(final)
    _, uninterrupted = load_checkpoint(reference)
    assert resumed["meta"]["step"] == uninterrupted["meta"]["step"] == steps and resumed["meta"]["finished"]
    got = np.array([h["total"] for h in resumed["extra_state"]["history"]])
    want = np.array([h["total"] for h in uninterrupted["extra_state"]["history"]])
    assert [h["step"] for h in resumed["extra_state"]["history"]] == [h["step"] for h in uninterrupted["extra_state"]["history"]]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_interrupted_adaptation_resumes(tmp_path, tiny_config, tiny_checkpoint):
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(100, 400, (64, 17, 2)), np.ones((64, 17, 1))], axis=-1)
    np.save(tmp_path / "target.npy", keypoints)
    out = tmp_path / "adapted.pt"
    args = ["--config", "tiny.yaml", "--set", f"data.cache_dir={tiny_config.data.cache_dir}", "--set", "data.mocap=[]",
            "--set", "adapt.epochs=40", "--set", "adapt.steps_per_epoch=5", "--set", "adapt.warm_start_steps=2",
            "--checkpoint", str(tiny_checkpoint), "--keypoints", str(tmp_path / "target.npy"), "--out", str(out),
            "--onnx-out", ""]
    proc = subprocess.Popen(CLI + ["adapt"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code, err = _interrupt_when(partial_path(out), proc)
    assert code == 130, err
    assert "key2mesh-train adapt --resume" in err and not out.exists()
    with pytest.raises(UnfinishedCheckpointError, match="unfinished adapt run"):
        load_checkpoint(partial_path(out))
    done = subprocess.run(CLI + ["adapt", "--resume"] + args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    _, payload = load_checkpoint(out)
    assert payload["meta"]["finished"] and len(payload["meta"]["history"]) >= 40
    assert not partial_path(out).exists()


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    network = Key2MeshNet(NetworkConfig(hidden=32))
    save_checkpoint(path, network, meta={"step": 1, "finished": True})
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left.*previous file there is intact"):
        save_checkpoint(path, network, meta={"step": 2, "finished": True})
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_old_checkpoints_short_of_their_plan_are_unfinished(tmp_path):
    """A checkpoint from before runs recorded 'finished' (periodic saves went to the final
    path) is judged by its own config: step 1000 of 4000 is refused."""
    path = tmp_path / "old.pt"
    network = Key2MeshNet(NetworkConfig(hidden=32))
    save_checkpoint(path, network, meta={"step": 1000, "stage": "pretrain", "config": {"pretrain": {"steps": 4000}}})
    with pytest.raises(UnfinishedCheckpointError, match="step 1000 of 4000"):
        load_checkpoint(path)
    save_checkpoint(path, network, meta={"step": 4000, "stage": "pretrain", "config": {"pretrain": {"steps": 4000}}})
    load_checkpoint(path)


def test_onnx_export_follows_its_checkpoint(tmp_path, tiny_checkpoint):
    from key2mesh.export import ensure_onnx

    onnx_path = tmp_path / "k.onnx"
    _, rebuilt = ensure_onnx(tiny_checkpoint, onnx_path)
    assert rebuilt
    _, rebuilt = ensure_onnx(tiny_checkpoint, onnx_path)
    assert not rebuilt
    network, payload = load_checkpoint(tiny_checkpoint)
    changed = tmp_path / "changed.pt"
    with torch.no_grad():
        network.out.bias += 0.01
    save_checkpoint(changed, network, meta=payload["meta"])
    _, rebuilt = ensure_onnx(changed, onnx_path)
    assert rebuilt
    # A graph of the same checkpoint built by older code (another graph version) is rebuilt too.
    import onnx

    from key2mesh.export import GRAPH_VERSION_KEY

    proto = onnx.load(str(onnx_path))
    next(p for p in proto.metadata_props if p.key == GRAPH_VERSION_KEY).value = "1"
    onnx.save(proto, str(onnx_path))
    _, rebuilt = ensure_onnx(changed, onnx_path)
    assert rebuilt
    _, rebuilt = ensure_onnx(changed, onnx_path)
    assert not rebuilt


def test_default_model_never_picks_an_unfinished_run(tmp_path, monkeypatch):
    from key2mesh.paths import default_model, shipped_model, trained_checkpoint

    monkeypatch.setenv("KEY2MESH_ARTIFACTS", str(tmp_path))
    network = Key2MeshNet(NetworkConfig(hidden=32))
    path, why = default_model()
    assert path == shipped_model() and "shipped model" in why
    save_checkpoint(partial_path(trained_checkpoint()), network,
                    meta={"step": 10, "steps_planned": 50, "stage": "pretrain", "finished": False})
    path, why = default_model()
    assert path == shipped_model() and "unfinished pre-training run" in why and "step 10 of 50" in why
    save_checkpoint(trained_checkpoint(), network, meta={"step": 50, "steps_planned": 50, "finished": True})
    path, why = default_model()
    assert path == trained_checkpoint() and "your pre-trained checkpoint" in why


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo is tested on Linux")
def test_pretraining_under_torchrun_with_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                             "--nproc-per-node", "2", "-m", "key2mesh_train.cli", "pretrain"]
                            + _tiny(tmp_path, out, 60), capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    network, payload = load_checkpoint(out)
    assert payload["meta"]["world_size"] == 2 and payload["meta"]["finished"]
    losses = [h["total"] for h in payload["extra_state"]["history"]]
    assert np.mean(losses[-3:]) < 0.8 * losses[0]
    assert network(torch.rand(2, 17, 3))["rotmats"].shape == (2, 24, 3, 3)
