"""``key2mesh-train``: pre-train, adapt, evaluate, benchmark and export Key2Mesh."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

MODEL_HELP = "checkpoint (default: your finished pre-training in artifacts/, else the shipped model)"
SHIPPED_MB_LIMIT = 20  # a committed model file stays under this (MB)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="default.yaml",
                        help="YAML config (a path, or a name in key2mesh_train/configs/). Default: default.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set pretrain.steps=500 (repeatable)")


def _model(path: str | None) -> str:
    """``path``, or the default model (your finished pre-training, else the shipped one), said aloud."""
    if path:
        return path
    from key2mesh.paths import default_model

    chosen, why = default_model()
    print(why, file=sys.stderr)
    return str(chosen)


def _config(args):
    from key2mesh_train.config import load_config

    return load_config(args.config, args.overrides)


def cmd_pretrain(args) -> int:
    from key2mesh_train.pretrain import pretrain

    config = _config(args)
    if args.max_steps is not None:
        config.pretrain.steps = args.max_steps
    if args.out:
        config.pretrain.checkpoint = args.out
    path = pretrain(config, resume=args.resume)
    print(f"checkpoint: {path}")
    return 0


def cmd_pack_mocap(args) -> int:
    from key2mesh_train.mocap.dataset import find_motion_files
    from key2mesh_train.mocap.packed import write_packed_bank
    from key2mesh_train.pretrain import data_digest, load_bank

    config = _config(args)
    if not find_motion_files(config.data.mocap):
        print(f"error: no MoCap (.bvh, AMASS .npz) under {config.data.mocap}; set data.mocap", file=sys.stderr)
        return 2
    _, bank = load_bank(config)
    out = write_packed_bank(bank, args.out)
    print(f"packed {len(bank)} frames of {len(bank.names)} sequences (frame stride {config.data.frame_stride}, "
          f"data digest of all of them {data_digest(bank)}) into {out} ({out.stat().st_size / 1e6:.1f} MB); "
          f"train there with --set data.mocap=[{out.name}]")
    return 0


def cmd_detector_residuals(args) -> int:
    from key2mesh.paths import detector_residuals
    from key2mesh_train.adaptation.benchmark import resolve_domain
    from key2mesh_train.detector_residuals import measure_detector_residuals

    try:
        detector = resolve_domain("detector", args.detector)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"error: no YOLO-pose detector to measure ({err}); give one with --detector", file=sys.stderr)
        return 2
    out = args.out or detector_residuals()
    summary = measure_detector_residuals(_config(args), args.people, detector, out)
    print(json.dumps(summary, indent=2))
    print(f"residuals: {out}; pre-train with them: --set synthetic.replayed_residuals={out} "
          f"(or --config detector_noise.yaml)")
    return 0


def cmd_export(args) -> int:
    from key2mesh.export import export_onnx
    from key2mesh.paths import exported_onnx
    from key2mesh.tensorrt_engine import build_engine, tensorrt_available

    onnx_path = export_onnx(_model(args.checkpoint), args.out or exported_onnx(), args.body_model)
    print(f"onnx: {onnx_path}")
    if args.int8:
        from key2mesh.int8_graph import quantize_graph

        print(f"onnx int8: {quantize_graph(onnx_path)} (node parameter graph_int8 runs it)")
    ok, reason = tensorrt_available()
    if args.engine == "never" or (args.engine == "auto" and not ok):
        if args.engine == "auto":
            print(f"tensorrt engine: skipped ({reason})")
        return 0
    print(f"tensorrt engine: {build_engine(onnx_path, fp16=args.fp16)}")
    return 0


def cmd_evaluate(args) -> int:
    from key2mesh.body_model import load_skinned_body
    from key2mesh.checkpoint import load_checkpoint
    from key2mesh_train.evaluation.datasets import read_3dpw, read_h36m_protocol2
    from key2mesh_train.evaluation.evaluate import evaluate_network

    network, _ = load_checkpoint(_model(args.checkpoint))
    body = load_skinned_body(args.body_model)
    evalset = read_3dpw(args.threedpw) if args.threedpw else read_h36m_protocol2(args.h36m)
    metrics = evaluate_network(network, evalset, body)
    print(json.dumps({"dataset": evalset.name, "frames": len(evalset), **metrics}, indent=2))
    return 0


def cmd_benchmark(args) -> int:
    from key2mesh_train.evaluation.benchmark import format_table, run_benchmark

    checkpoints = {"Key2Mesh": _model(args.checkpoint)}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--compare {item!r} must look like NAME=PATH")
        checkpoints[f"Key2Mesh, {name}"] = path
    from key2mesh.paths import plot

    args.plot = str(plot("benchmark.png")) if args.plot is None else args.plot or None
    result = run_benchmark(_config(args), checkpoints, people=args.people, smplify_people=args.smplify_people,
                           plot=args.plot)
    print(f"held-out subjects {', '.join(result['subjects'])}; {result['people']} people, detector-like 2D noise")
    print(format_table(result["rows"]))
    if result["actions"]:
        print()
        print(format_table(result["actions"], first="action"))
    print(f"Key2Mesh: {result['relative_pa_vs_optimisation']:.0%} lower PA-MPJPE than the optimisation on its subset, "
          f"{result['speedup']:.0f}x faster per person")
    if args.real_detector:
        from key2mesh_train.adaptation.benchmark import real_detector_scores, resolve_domain

        rows = real_detector_scores(_config(args), checkpoints, args.real_detector, resolve_domain("detector", args.detector))
        print()
        print(f"real detector: {next(iter(rows.values()))['people']} held-out bodies rendered and detected "
              f"(of {args.real_detector}), the robot camera of adapt-benchmark, no adaptation")
        print(format_table(rows))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def cmd_latency(args) -> int:
    from key2mesh.paths import exported_onnx
    from key2mesh_train.latency import format_latency, run_latency

    report = run_latency(args.onnx or str(exported_onnx()), _model(args.checkpoint), repeats=args.repeats, threads=args.threads)
    print(format_latency(report))
    return 0


def cmd_adapt(args) -> int:
    from key2mesh_train.adaptation.adapt import adapt_to_recording

    config = _config(args)
    out = Path(args.out or config.adapt.checkpoint)
    onnx_out = out.with_suffix(".onnx") if args.onnx_out is None else args.onnx_out or None
    result = adapt_to_recording(config, _model(args.checkpoint), bag=args.bag, topic=args.topic, images=args.images,
                                keypoints=args.keypoints, detector=args.detector, out=out,
                                onnx_out=onnx_out, resume=args.resume)
    print(json.dumps(result, indent=2))
    return 0


def cmd_adapt_benchmark(args) -> int:
    from key2mesh.paths import adapt_benchmark_checkpoint, plot
    from key2mesh_train.adaptation.benchmark import format_summary, run_adaptation_benchmark

    summary = run_adaptation_benchmark(_config(args), _model(args.checkpoint), args.out or adapt_benchmark_checkpoint(),
                                       adapt_people=args.adapt_people, test_people=args.test_people,
                                       plot=plot("adaptation.png") if args.plot is None else args.plot or None,
                                       domain=args.domain, detector_path=args.detector,
                                       camera_tilt_deg=args.camera_tilt, resume=args.resume)
    print(format_summary(summary))
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def cmd_ship(args) -> int:
    from key2mesh.checkpoint import load_checkpoint, save_checkpoint
    from key2mesh.paths import shipped_model

    network, payload = load_checkpoint(args.checkpoint)  # refuses an unfinished run
    network.config.mirror_average = args.mirror_average
    out = Path(args.out) if args.out else shipped_model()
    meta = {**payload["meta"], "shipped_from": str(args.checkpoint), "mirror_average": args.mirror_average}
    save_checkpoint(out, network, meta=meta, extra_state={"history": payload["extra_state"].get("history", [])},
                    precision=args.precision)
    size = out.stat().st_size / 1e6
    print(f"shipped model: {out} ({size:.1f} MB, {args.precision}); update MODEL_CARD.md beside it")
    if size > SHIPPED_MB_LIMIT:
        print(f"warning: over the repository's {SHIPPED_MB_LIMIT} MB limit for a committed model; "
              f"try --precision int8", file=sys.stderr)
    return 0


def cmd_show_mocap(args) -> int:
    from key2mesh.body_model import load_skinned_body
    from key2mesh.paths import plot
    from key2mesh_train.mocap.contact_sheet import draw_contact_sheet

    out = args.out or plot(f"mocap/{Path(args.file).stem}.png")
    report = draw_contact_sheet(args.file, load_skinned_body(args.body_model), out, columns=args.frames)
    print(json.dumps(report.as_dict(), indent=2))
    print(f"contact sheet: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="key2mesh-train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pre-train on MoCap (procedural stand-in motion if none is found)")
    _add_config(p)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (quick runs)")
    p.add_argument("--out", help="checkpoint path (default from config)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint if it exists")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("pack-mocap", help="every MoCap frame training reads, retargeted, in one file for another machine",
                       description="Load and retarget the config's MoCap (data.mocap, data.frame_stride) and write "
                                   "the frames, with their sequence names, to one .npz: give it as data.mocap on a "
                                   "machine without the MoCap files (a rented GPU). The train / held-out split "
                                   "by performer happens there as here.")
    _add_config(p)
    p.add_argument("--out", required=True, help="the .npz to write")
    p.set_defaults(func=cmd_pack_mocap)

    p = sub.add_parser("detector-residuals", help="measure a real detector's errors on rendered training bodies, "
                                                  "for pre-training to replay",
                       description="Render bodies of the training performers (never the held-out ones) through a "
                                   "robot-like camera, detect them with the YOLO-pose model and write each "
                                   "detection's offsets from the body's true keypoints (box units), confidences "
                                   "and misses to an .npz. pretrain replays them on synthetic.replayed_residuals_share "
                                   "of its steps when synthetic.replayed_residuals names the file. Detection "
                                   "takes ~0.2 s a body on a CPU; results are cached.")
    _add_config(p)
    p.add_argument("--people", type=int, default=2000, help="bodies to render (some are missed)")
    p.add_argument("--detector", help="YOLO-pose model; default: the shared model")
    p.add_argument("--out", help="default: artifacts/detector_residuals.npz")
    p.set_defaults(func=cmd_detector_residuals)

    p = sub.add_parser("ship", help="write a finished checkpoint as the shipped model (key2mesh/assets/), fp16 or int8")
    p.add_argument("--checkpoint", required=True, help="a finished pre-training checkpoint")
    p.add_argument("--out", help="default: key2mesh/assets/key2mesh_cmu.pt")
    p.add_argument("--mirror-average", action=argparse.BooleanOptionalAction, default=True,
                   help="at inference also read the mirrored keypoints and average the two answers "
                        "(network.mirror_average; default: on)")
    p.add_argument("--precision", choices=("fp16", "int8"), default="fp16",
                   help="stored weights (they load as fp32): fp16, or int8 Linear weights with one scale per "
                        f"output row, for networks whose fp16 file passes {SHIPPED_MB_LIMIT} MB (default: %(default)s)")
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("show-mocap", help="retarget one BVH file and draw it next to the BVH's own skeleton",
                       description="Retarget one BVH file (any supported rig, detected from its joint names) and "
                                   "write a contact sheet: the BVH skeleton beside the retargeted body, front and side. "
                                   "Prints the rig, units, up axis and how closely the body follows the BVH's bones.")
    p.add_argument("file", help="a .bvh file")
    p.add_argument("--out", help="PNG path (default: artifacts/mocap/<name>.png)")
    p.add_argument("--frames", type=int, default=8, help="frames on the sheet (default: %(default)s)")
    p.add_argument("--body-model", help="SMPL-format .pkl (default: $KEY2MESH_BODY_MODEL or the stand-in)")
    p.set_defaults(func=cmd_show_mocap)

    p = sub.add_parser("export", help="checkpoint -> ONNX (+ TensorRT engine where TensorRT and a GPU exist)")
    p.add_argument("--checkpoint", default=None, help=MODEL_HELP)
    p.add_argument("--out", default=None, help="ONNX path (default: artifacts/key2mesh.onnx)")
    p.add_argument("--body-model", help="SMPL-format .pkl (default: $KEY2MESH_BODY_MODEL or the stand-in)")
    p.add_argument("--engine", choices=("auto", "always", "never"), default="auto",
                   help="build a TensorRT engine: auto = only where possible; always = fail if impossible")
    p.add_argument("--fp16", action="store_true", help="FP16 TensorRT engine")
    p.add_argument("--int8", action="store_true",
                   help="also write an int8 copy for ONNX Runtime on CPU (<out>.int8.onnx): the network's products "
                        "in int8 except the first and last, about 1.4x faster, the same held-out accuracy (model card)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="MPJPE / PA-MPJPE / PVE on 3DPW or Human3.6M protocol 2")
    p.add_argument("--checkpoint", default=None, help=MODEL_HELP)
    p.add_argument("--body-model")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--threedpw", help="3DPW root (with sequenceFiles/<split>/*.pkl)")
    group.add_argument("--h36m", help="Human3.6M protocol-2 .npz")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("benchmark", help="held-out performers with detector-like noise: Key2Mesh vs the "
                       "SMPLify-style optimisation, per action where the MoCap says")
    _add_config(p)
    p.add_argument("--checkpoint", default=None,
                   help="model under test (default: your finished pre-training, else the shipped model)")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=PATH",
                   help="another checkpoint scored on the same inputs, e.g. procedural=artifacts/key2mesh_procedural.pt")
    p.add_argument("--people", type=int, default=1024)
    p.add_argument("--smplify-people", type=int, default=64)
    p.add_argument("--plot", default=None, help="figure path (default: artifacts/benchmark.png; '' for none)")
    p.add_argument("--real-detector", type=int, default=0, metavar="PEOPLE",
                   help="also score every model on this many held-out bodies rendered and read by the real "
                        "YOLO-pose detector (adapt-benchmark's source score; 1024 gives its people; rendering "
                        "and detecting takes ~0.25 s a body once, cached after). Default: off")
    p.add_argument("--detector", help="YOLO-pose model for --real-detector; default: the shared model")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("latency", help="per-backend latency (batch 1/5/64) and speed-up vs optimisation")
    p.add_argument("--onnx", default=None, help="ONNX path (default: artifacts/key2mesh.onnx)")
    p.add_argument("--checkpoint", default=None, help=MODEL_HELP)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = library default)")
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("adapt", help="adapt to a target camera from unlabelled 2D detections (ROS 2 bag, images or keypoints)",
                       description="Adapt a pre-trained model to a camera from its unlabelled 2D detections: a warm "
                                   "start on MoCap carrying those detections' own noise (adapt.warm_start_steps; 0 "
                                   "skips it), then the paper's adversarial recipe (adapt.epochs). No 3D labels. "
                                   "What is written is the stage (source, warm start or an epoch) with the lowest "
                                   "error on MoCap seen through the target's own residuals (adapt.keep_best; false "
                                   "keeps the last epoch).")
    _add_config(p)
    p.add_argument("--checkpoint", default=None, help="pre-trained source " + MODEL_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--bag", help="ROS 2 bag folder (mcap or sqlite3)")
    src.add_argument("--images", help="folder of images")
    src.add_argument("--keypoints", help=".npy/.npz of COCO-17 pixel keypoints [N,17,3]")
    p.add_argument("--topic", default="/camera/image_raw", help="image topic in the bag")
    p.add_argument("--detector", default=None, help="YOLO-pose model (.pt/.onnx/.engine); default: shared model")
    p.add_argument("--out", default=None, help="adapted checkpoint (default: adapt.checkpoint in the config, "
                   "artifacts/key2mesh_adapted.pt)")
    p.add_argument("--onnx-out", default=None, help="export the adapted model here (default: beside --out; '' to skip)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted adaptation")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("adapt-benchmark", help="prove adaptation without 3D labels: PA-MPJPE before/after on a "
                       "target domain whose 3D ground truth is withheld")
    _add_config(p)
    p.add_argument("--checkpoint", default=None, help="pre-trained source " + MODEL_HELP)
    p.add_argument("--out", default=None,
                   help="where the adapted model is written (default: artifacts/key2mesh_adapted_benchmark.pt)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted adaptation stage")
    p.add_argument("--domain", choices=("auto", "detector", "synthetic"), default="auto",
                   help="detector: render held-out bodies and read them with the real YOLO-pose detector "
                   "(cached; ~0.2 s a body on a CPU); synthetic: modelled detector biases; "
                   "auto: detector when its model file is on disk, else synthetic")
    p.add_argument("--detector", default=None, help="YOLO-pose model for --domain detector; default: shared model")
    p.add_argument("--camera-tilt", type=float, default=0.0, metavar="DEG",
                   help="how far the target camera looks down on people, in degrees, negative for up (pre-training saw +-20; "
                   "a robot's head camera may look down 30 or more). Default: %(default)s")
    p.add_argument("--adapt-people", type=int, default=2048, help="unlabelled target people used for adaptation")
    p.add_argument("--test-people", type=int, default=1024, help="separate target people scored against 3D truth")
    p.add_argument("--plot", default=None, help="error and critic accuracy by stage, with the labelled reference "
                   "(default: artifacts/adaptation.png; '' for none)")
    p.set_defaults(func=cmd_adapt_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt as err:
        # A run's own interruption says where its state went and how to resume; elsewhere
        # nothing was written.
        print(f"key2mesh-train {args.command}: {err or 'interrupted; nothing was written'}", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, FileExistsError, OSError) as err:
        print(f"key2mesh-train {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
