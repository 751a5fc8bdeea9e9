import numpy as np
import onnx
import pytest
import torch

from key2mesh.backends import (
    BackendUnavailable,
    OnnxRuntimeBackend,
    TorchBackend,
    backend_status,
    create_backend,
)
from key2mesh.checkpoint import load_checkpoint, save_checkpoint
from key2mesh.export import body_sidecar_path
from key2mesh.fused_graph import OUTPUT_NAMES
from key2mesh.keypoints import normalize_keypoints
from key2mesh.tensorrt_engine import build_engine, tensorrt_available


def _inputs(batch, seed=0):
    rng = np.random.default_rng(seed)
    kp = rng.uniform(50, 400, (batch, 17, 3)).astype(np.float32)
    kp[..., 2] = rng.uniform(0, 1, (batch, 17))
    return normalize_keypoints(kp)


def test_onnx_export_has_dynamic_batch_and_metadata(tiny_onnx, body):
    model = onnx.load(str(tiny_onnx))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 17 and dims[2].dim_value == 3
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["key2mesh_num_vertices"] == str(body.num_vertices)
    with np.load(body_sidecar_path(tiny_onnx)) as side:
        assert side["faces"].shape == tuple(body.faces.shape)
    backend = OnnxRuntimeBackend(tiny_onnx)
    assert backend.num_vertices == body.num_vertices and backend.faces.shape == tuple(body.faces.shape)


@pytest.mark.parametrize("batch", [1, 5, 64])
def test_onnxruntime_matches_torch(tiny_onnx, tiny_checkpoint, batch):
    ort_out = OnnxRuntimeBackend(tiny_onnx).run(_inputs(batch))
    torch_out = TorchBackend(tiny_checkpoint).run(_inputs(batch))
    for name in OUTPUT_NAMES:
        assert ort_out[name].shape == torch_out[name].shape
        np.testing.assert_allclose(ort_out[name], torch_out[name], atol=2e-4, rtol=1e-3, err_msg=name)
    assert ort_out["vertices"].shape[0] == batch and ort_out["joints"].shape[1:] == (24, 3)
    np.testing.assert_allclose(ort_out["joints"][:, 0], 0, atol=1e-5)  # root-relative


def test_auto_backend_choice_and_loud_failures(tiny_onnx, tiny_checkpoint, caplog):
    caplog.set_level("INFO")
    backend = create_backend("auto", onnx_path=tiny_onnx, checkpoint=tiny_checkpoint)
    expected = "tensorrt" if backend_status()["tensorrt"][0] else "onnxruntime"
    assert backend.name == expected
    assert f"backend auto -> {expected}" in caplog.text
    assert create_backend("auto", checkpoint=tiny_checkpoint).name == "torch"  # no ONNX file
    if not backend_status()["tensorrt"][0]:
        with pytest.raises(BackendUnavailable, match="tensorrt"):
            create_backend("tensorrt", onnx_path=tiny_onnx)
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend("tflite", onnx_path=tiny_onnx)
    with pytest.raises(ValueError, match="NaN"):
        backend.run(np.full((1, 17, 3), np.nan, np.float32))


def test_tensorrt_engine_matches_onnxruntime(tiny_onnx, tmp_path):
    ok, reason = tensorrt_available()
    if not ok:
        pytest.skip(f"TensorRT cannot run here: {reason}")
    engine = build_engine(tiny_onnx, cache_dir=tmp_path)
    assert build_engine(tiny_onnx, cache_dir=tmp_path) == engine  # cached
    trt_out = create_backend("tensorrt", onnx_path=tiny_onnx, engine_path=engine).run(_inputs(5))
    ort_out = OnnxRuntimeBackend(tiny_onnx).run(_inputs(5))
    np.testing.assert_allclose(trt_out["vertices"], ort_out["vertices"], atol=1e-3)


def test_export_cli_reports_engine_skip(tiny_checkpoint, tmp_path, capsys):
    from key2mesh_train.cli import main

    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert "onnx:" in out
    if not tensorrt_available()[0]:
        assert "tensorrt engine: skipped" in out
        assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "n.onnx"),
                     "--engine", "always"]) == 2
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt")]) == 2


def test_torch_onnx_graph_is_deterministic_in_eval(tiny_checkpoint):
    backend = TorchBackend(tiny_checkpoint)
    x = _inputs(4)
    a, b = backend.run(x), backend.run(x)
    assert np.array_equal(a["vertices"], b["vertices"])
    assert torch.is_inference_mode_enabled() is False


def test_shipped_mirror_average_survives_export(tiny_checkpoint, tmp_path):
    """`key2mesh-train ship` turns mirror averaging on; the fp16 file, the torch backend and the
    exported graph all run it, and they agree."""
    from key2mesh.checkpoint import load_checkpoint
    from key2mesh.export import export_onnx
    from key2mesh_train.cli import main as train_cli

    shipped = tmp_path / "shipped.pt"
    assert train_cli(["ship", "--checkpoint", str(tiny_checkpoint), "--out", str(shipped)]) == 0
    network, payload = load_checkpoint(shipped)
    assert network.config.mirror_average and payload["meta"]["mirror_average"]
    unmirrored = tmp_path / "unmirrored.pt"
    assert train_cli(["ship", "--checkpoint", str(tiny_checkpoint), "--out", str(unmirrored), "--no-mirror-average"]) == 0
    assert not load_checkpoint(unmirrored)[0].config.mirror_average
    plain = TorchBackend(unmirrored).run(_inputs(5))
    averaged = TorchBackend(shipped).run(_inputs(5))
    assert np.abs(plain["pose"] - averaged["pose"]).max() > 1e-4
    ort_out = OnnxRuntimeBackend(export_onnx(shipped, tmp_path / "shipped.onnx")).run(_inputs(5))
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(ort_out[name], averaged[name], atol=2e-4, rtol=1e-3, err_msg=name)


def test_int8_shipping_is_a_quarter_and_answers_alike(tiny_checkpoint, tmp_path):
    """`ship --precision int8`: Linear weights as int8 with one scale per output row. The file is
    under a third of fp32 (the tiny network's non-Linear parts stay fp16), it loads as fp32 and
    the fused graph answers as the fp32 checkpoint does, within what 8 bits allow."""
    from key2mesh.checkpoint import load_checkpoint, quantize_int8, save_checkpoint
    from key2mesh_train.cli import main as train_cli

    int8 = tmp_path / "int8.pt"
    assert train_cli(["ship", "--checkpoint", str(tiny_checkpoint), "--out", str(int8), "--precision", "int8",
                      "--no-mirror-average"]) == 0
    network, payload = load_checkpoint(int8)
    assert payload["meta"]["precision"] == "int8"
    assert payload["state_dict"]["out.weight"].dtype == torch.int8
    assert all(p.dtype == torch.float32 for p in network.parameters())
    fp32 = save_checkpoint(tmp_path / "fp32.pt", load_checkpoint(tiny_checkpoint)[0])
    assert int8.stat().st_size < fp32.stat().st_size / 3
    reference, quantized = TorchBackend(fp32).run(_inputs(8)), TorchBackend(int8).run(_inputs(8))
    joints_error = np.abs(reference["joints"] - quantized["joints"]).max()
    assert 0 < joints_error < 0.01  # metres: changed, but by less than a centimetre

    weight = torch.randn(64, 32) * torch.logspace(-3, 0, 64)[:, None]  # rows of very different sizes
    q, scale = quantize_int8(weight)
    assert ((q.float() * scale - weight).abs() <= scale / 2 + 1e-9).all()  # per-row: small rows keep precision
    with pytest.raises(ValueError, match="precision"):
        save_checkpoint(tmp_path / "x.pt", network, precision="int4")


def test_torch_backend_runs_where_it_is_told(tiny_checkpoint):
    backend = TorchBackend(tiny_checkpoint, device="cpu")
    assert backend.provider == "cpu"
    assert backend.run(_inputs(2))["joints"].shape == (2, 24, 3)


def _copy_graph(onnx_path, out_path):
    """A private copy of an export (graph and faces sidecar), so a test may write beside it."""
    import shutil

    shutil.copyfile(onnx_path, out_path)
    shutil.copyfile(body_sidecar_path(onnx_path), body_sidecar_path(out_path))
    return out_path


def test_int8_graph_keeps_the_first_and_last_products_and_answers_alike(tiny_onnx, tiny_checkpoint, tmp_path, caplog):
    """The node's default CPU graph (graph_int8): the network's hidden products in int8, its
    first and last and the skinning in fp32; made once per fp32 export, remade when that changes."""
    from key2mesh.export import ensure_onnx
    from key2mesh.int8_graph import ensure_int8_graph, fp32_products, int8_path, int8_products, quantize_graph

    fp32_path = _copy_graph(tiny_onnx, tmp_path / "k.onnx")
    path, rebuilt = ensure_int8_graph(fp32_path)
    assert rebuilt and path == int8_path(fp32_path) == tmp_path / "k.int8.onnx" and body_sidecar_path(path).exists()
    fp32, int8 = onnx.load(str(fp32_path)), onnx.load(str(path))
    first, last = fp32_products(fp32)
    hidden = [n.name for n in fp32.graph.node if n.op_type == "Gemm" and n.name.startswith("/network/")][1:-1]
    quantized = int8_products(int8)
    assert hidden and len(quantized) == len(hidden)
    assert not any(name.startswith((first, last, "/body/")) for name in quantized)
    fp32_left = [n.name for n in int8.graph.node if n.op_type in ("Gemm", "MatMul")]  # the quantiser may split a Gemm
    assert any(n.startswith(first) for n in fp32_left) and any(n.startswith(last) for n in fp32_left)
    reference, answer = OnnxRuntimeBackend(fp32_path).run(_inputs(16)), OnnxRuntimeBackend(path).run(_inputs(16))
    joints_error = np.abs(reference["joints"] - answer["joints"]).max()
    assert 0 < joints_error < 0.01  # metres: changed, by less than a centimetre
    assert ensure_int8_graph(fp32_path) == (path, False)
    with pytest.raises(ValueError, match="already quantised"):
        quantize_graph(path, tmp_path / "twice.onnx")
    with pytest.raises(FileNotFoundError, match="export"):
        quantize_graph(tmp_path / "missing.onnx")

    # Another checkpoint exported over the fp32 graph: its int8 copy is remade.
    network, payload = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        network.out.bias += 0.01
    changed = save_checkpoint(tmp_path / "changed.pt", network, meta=payload["meta"])
    assert ensure_onnx(changed, fp32_path)[1]
    assert ensure_int8_graph(fp32_path)[1]
    caplog.set_level("INFO")
    backend = create_backend("onnxruntime", onnx_path=fp32_path, int8=True)
    assert backend.path == path and "k.int8.onnx" in backend.description and "up to date" in caplog.text
    assert create_backend("onnxruntime", onnx_path=path, int8=True).path == path  # already int8: run as given
    foreign = tmp_path / "foreign.onnx"  # not a Key2Mesh graph: the fp32 file runs, with a warning
    foreign.write_bytes(fp32_path.read_bytes().replace(b"/network/", b"/elsewhr/"))
    assert create_backend("onnxruntime", onnx_path=foreign, int8=True).path == foreign
    assert "no int8 copy" in caplog.text


def test_interrupted_int8_copy_leaves_nothing_half_made(tiny_onnx, tmp_path, monkeypatch):
    import onnxruntime.quantization

    from key2mesh.int8_graph import ensure_int8_graph, int8_path

    fp32_path = _copy_graph(tiny_onnx, tmp_path / "k.onnx")

    def interrupted(model_input, model_output, **kwargs):
        open(model_output, "wb").write(b"half a graph")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_int8_graph(fp32_path)
    assert not int8_path(fp32_path).exists() and not list(tmp_path.glob("*.tmp"))
