"""``anytouch convert`` (checkpoint formats) and ``anytouch export`` (ONNX / TorchScript encoders)."""
from __future__ import annotations

from pathlib import Path

from .args import CLIError, add_model_args, check_checkpoint, check_output_file, load_from_args

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``convert`` and ``export`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("convert", help="convert checkpoints: any supported format -> ours / original / safetensors / "
                                       "hub folder",
                       description="Read any checkpoint anytouch.load_model reads (ours, the original AnyTouch "
                                   "stage-1/2 files, CLIP, AnyTouch 2, hub folders and hf-hub: ids) and write it as "
                                   "ours (.pth), safetensors weights (no optimizer state), the original layout, or a "
                                   "hub-layout folder (config.json, model.safetensors, generated README.md card). "
                                   "AnyTouch 2 encoders convert to safetensors (architecture in the metadata), to the "
                                   "released upstream layout (--to original or --to upstream) or to a hub folder.")
    p.add_argument("src", help="input checkpoint file, folder or hf-hub:ORG/NAME id")
    p.add_argument("dst", help="output file (a folder for --to hub)")
    p.add_argument("--to", choices=("ours", "safetensors", "original", "upstream", "hub"), default=None,
                   help="output format (default: safetensors for a .safetensors name, else ours; for AnyTouch 2 "
                        "files: else upstream); 'upstream' is the AnyTouch 2 name of 'original'")
    p.add_argument("--config", default=None, help="CLIP config.json / folder / preset for original and CLIP inputs")
    p.add_argument("--probe-results", default=None, metavar="RESULTS_JSON",
                   help="--to hub: the results.json of anytouch eval, reported in the model card")
    p.set_defaults(func=convert)

    p = sub.add_parser("export", help="touch encoder -> ONNX and TorchScript, checked against PyTorch",
                       description="Export the touch encoder (inputs: touch (B,3,H,W) or clips (B,3,3,H,W), sensor "
                                   "ids (B,) int64; output: features (B,P)); dynamic batch. Each file is run on a "
                                   "fresh batch and compared with PyTorch (ONNX with onnxruntime when installed).")
    add_model_args(p, device=False)
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--format", nargs="+", choices=("onnx", "torchscript"), default=["onnx", "torchscript"])
    p.add_argument("--input", choices=("image", "clip"), default=None,
                   help="exported input kind (default: image for AnyTouch 1, clip for AnyTouch 2)")
    p.add_argument("--pooling", choices=("cls", "global", "tokens", "none", "last"), default="cls",
                   help="cls / global (AnyTouch 1), cls / tokens / none / last (AnyTouch 2); default cls")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs diff accepted (default 1e-4)")
    p.set_defaults(func=export, device="cpu")


def convert(args) -> int:
    """Load ``src`` in any supported format and write it in the ``--to`` format."""
    # here, not at the top: these import torch (keeps anytouch --help fast)
    from ..adapt import recorded_slots
    from ..checkpoint import anytouch2, atomic_save, build, export_safetensors, make_checkpoint, read_checkpoint
    from ..checkpoint.original import to_original_stage1, to_original_stage2

    to = args.to or ("safetensors" if args.dst.endswith(".safetensors") else "ours")
    # before reading a multi-GB file, not after
    if to == "hub":
        if Path(args.dst).is_file():
            raise CLIError(f"the destination of --to hub {args.dst} is a file; expected a folder (new or existing)")
    else:
        check_output_file(args.dst, (".safetensors",) if to == "safetensors" else (".pth", ".pt", ".bin"),
                          f"the destination of --to {to}")
    if args.probe_results is not None and to != "hub":
        raise CLIError(f"--probe-results is for --to hub (the model card), not --to {to}")
    check_checkpoint(args.src, "the source")
    loaded = read_checkpoint(args.src)
    if to == "hub":
        return _convert_to_hub(args, loaded)
    if loaded.format == anytouch2.FORMAT:
        return _convert_anytouch2(args, loaded)
    if to == "upstream":
        raise CLIError(f"--to upstream is for AnyTouch 2 files; {args.src} is a {loaded.format} checkpoint "
                       "(use --to original for the original AnyTouch layout)")
    model, _ = build(loaded, "model", args.config, merge_lora=to != "original")
    if to == "original":
        if model.has_towers:
            sd = to_original_stage2(model.state_dict(), lora_rank=model.arch.lora_rank)
        else:
            sd = to_original_stage1(model.touch.state_dict())
        out = atomic_save({"model": sd}, args.dst)  # the original container: weights under "model"
    elif to == "safetensors":
        out = export_safetensors(make_checkpoint(model), args.dst)
    else:
        config = {"converted_from": str(args.src)}
        slots = recorded_slots(loaded)
        if slots:  # keep the record of adapted sensor slots (anytouch embed --sensor checks it)
            config["adapt"] = {"slots": slots}
        out = atomic_save(make_checkpoint(model, config), args.dst)
    kind = "stage-2" if model.has_towers else "stage-1"
    print(f"{args.src} -> {out} ({to}, {kind}, arch {model.arch.name})")
    return 0


def _convert_anytouch2(args, loaded) -> int:
    """An AnyTouch 2 file (already read) -> its safetensors export or the released upstream layout."""
    from ..checkpoint import anytouch2, build  # here, not at the top: imports torch (keeps anytouch --help fast)

    if args.to == "ours":
        raise CLIError(f"{args.src} is an AnyTouch 2 encoder; it converts to --to safetensors or --to upstream "
                       "(our .pth format holds AnyTouch 1 models)")
    to = "safetensors" if args.to == "safetensors" or (args.to is None and args.dst.endswith(".safetensors")) \
        else "upstream"
    encoder, _ = build(loaded, "encoder", args.config)
    out = anytouch2.export_safetensors(encoder, args.dst) if to == "safetensors" else \
        anytouch2.save_upstream(encoder, args.dst)
    print(f"{args.src} -> {out} ({to}, AnyTouch 2 encoder, {encoder.num_frames} frames)")
    return 0


def _convert_to_hub(args, loaded) -> int:
    """Any supported checkpoint (already read) -> a hub-layout folder."""
    from ..adapt import recorded_slots  # here, not at the top: these import torch (keeps anytouch --help fast)
    from ..checkpoint import build, hub

    model, _ = build(loaded, "encoder" if loaded.kind == "encoder" else "model", args.config)
    out = hub.save_pretrained(model, args.dst, source=args.src, source_weights=loaded.weights,
                              source_format=loaded.format, probe=args.probe_results,
                              adapted_slots=recorded_slots(loaded))
    arch = model.config if getattr(model, "family", "") == "anytouch2" else model.arch
    print(f"{args.src} -> {out} (hub folder: config.json, model.safetensors, README.md; {loaded.kind}, "
          f"arch {arch.name})")
    return 0


def export(args) -> int:
    """Export the touch encoder and compare each exported file with PyTorch."""
    from ..export import export_encoder  # here, not at the top: imports torch (keeps anytouch --help fast)

    enc = load_from_args(args, "encoder")
    kind = args.input or ("clip" if getattr(enc, "family", "") == "anytouch2" else "image")
    checks = export_encoder(enc, args.output, formats=args.format, input=kind, pooling=args.pooling,
                            opset=args.opset)
    for c in checks.values():
        diff = "not compared" if c.max_abs_diff is None else f"max abs diff {c.max_abs_diff:.3g}"
        print(f"{c.format:<12} {c.path}  {diff} vs PyTorch (checked with {c.checked_with})")
    bad = [c for c in checks.values() if c.max_abs_diff is not None and c.max_abs_diff > args.tolerance]
    if bad:
        raise CLIError(f"{', '.join(c.format for c in bad)} output differs from PyTorch by more than "
                       f"--tolerance {args.tolerance:g}")
    return 0
