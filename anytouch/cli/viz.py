"""``anytouch viz {mae,tsne,curves}``: the picture commands (parsers and handlers; the drawing is in
:mod:`anytouch.viz`)."""
from __future__ import annotations

from pathlib import Path

from .args import add_model_args, check_sensor_slot, load_from_args, sensor_arg

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``viz`` and its three subcommands to the ``anytouch`` subparsers ``sub``."""
    viz = sub.add_parser("viz", help="pictures: MAE grid, t-SNE by sensor and label, training curves (PNG)",
                         description="Draw one picture as a PNG.")
    vs = viz.add_subparsers(dest="viz", metavar="PICTURE", required=True)

    p = vs.add_parser("mae", help="inputs, masked inputs, reconstructions, predicted next frame",
                      description="Run the model's MAE (stage-1 objective) on clips of a dataset (default: built-in "
                                  "synthetic TacQuad clips) and draw one row per clip.")
    add_model_args(p)
    p.add_argument("--output", "-o", required=True, help="PNG file")
    p.add_argument("--dataset", default="tacquad", help="pre-training source to draw clips from (default tacquad)")
    p.add_argument("--data-root", default="synthetic", help="dataset root, or 'synthetic' (default)")
    p.add_argument("--num", type=int, default=6, help="rows (default 6)")
    p.add_argument("--image", action="store_true", help="image objective (no next frame) instead of 4-frame clips")
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--seed", type=int, default=0, help="masking seed")
    p.set_defaults(func=mae)

    p = vs.add_parser("tsne", help="t-SNE of touch embeddings coloured by sensor and by label",
                      description="Embed frames and draw a two-panel t-SNE (by sensor, by label). Default: the same "
                                  "materials rendered through the five sensors of the built-in synthetic data; "
                                  "--dataset embeds datasets instead (label = sample label, else its source).")
    add_model_args(p)
    p.add_argument("--output", "-o", required=True, help="PNG file")
    p.add_argument("--dataset", nargs="+", default=None, help="datasets to embed (e.g. tag_material of1)")
    p.add_argument("--data-root", default="synthetic", help="root of --dataset (default synthetic)")
    p.add_argument("--split", default="test")
    p.add_argument("--num", type=int, default=200, help="samples per dataset (default 200)")
    p.add_argument("--materials", type=int, default=8, help="synthetic: materials (default 8)")
    p.add_argument("--per-sensor", type=int, default=12, help="synthetic: frames per material and sensor (default 12)")
    p.add_argument("--sensor", type=sensor_arg, default=None, help="use this sensor token for every frame "
                   "(e.g. universal) instead of each frame's own")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=tsne)

    p = vs.add_parser("curves", help="training curves from log.jsonl / tensorboard logs",
                      description="One panel per logged scalar, one line per run.")
    p.add_argument("runs", nargs="+", help="run folders or log.jsonl files, optionally NAME=PATH")
    p.add_argument("--output", "-o", required=True, help="PNG file")
    p.add_argument("--keys", nargs="+", default=(), help="only these scalars")
    p.add_argument("--smooth", type=float, default=0.0, help="EMA smoothing weight in [0, 1) (TensorBoard's slider)")
    p.set_defaults(func=curves)


def _data_source(data_root: str) -> dict:
    """``build_dataset`` keywords of ``--data-root``: a folder, or ``synthetic`` for the built-in synthetic twins."""
    return {"synthetic": True} if data_root == "synthetic" else {"root": data_root}


def mae(args) -> int:
    """Draw the MAE grid of ``--num`` clips."""
    # here, not at the top: these import torch / matplotlib (keeps anytouch --help fast)
    from ..data import build_dataset
    from ..data.device_aug import stack_touch
    from ..viz.mae import mae_grid

    model = load_from_args(args, "model")
    size = model.encoder.image_size
    ds = build_dataset(args.dataset, **_data_source(args.data_root), clip="image" if args.image else "video", stage=1,
                       train=False, image_size=size)
    items = [ds[i] for i in range(min(args.num, len(ds)))]
    touch = stack_touch(items)
    sensors = [int(it["sensor"]) for it in items]
    path = mae_grid(model, touch, sensors, args.output, mask_ratio=args.mask_ratio, seed=args.seed, max_rows=args.num)
    print(f"wrote {path}")
    return 0


def tsne(args) -> int:
    """Embed frames and draw the two-panel t-SNE."""
    import numpy as np  # here, not at the top: keeps anytouch --help fast

    # here, not at the top: these import torch / matplotlib
    from ..data import build_dataset
    from ..viz.tsne import collect_embeddings, plot_tsne, synthetic_sensor_set

    enc = load_from_args(args, "encoder")
    if args.sensor is not None:
        check_sensor_slot(args.checkpoint, args.sensor, enc.num_sensors, family=enc.family)
    if args.dataset:
        sets = [(build_dataset(name, split=args.split, **_data_source(args.data_root), image_size=enc.image_size,
                               train=False),
                 args.num) for name in args.dataset]
    else:
        touch, sensors, labels = synthetic_sensor_set(args.materials, args.per_sensor, image_size=enc.image_size,
                                                      seed=args.seed)
        sets = [([{"touch": t, "sensor": s, "label": lb} for t, s, lb in zip(touch, sensors, labels)], None)]
    parts = [collect_embeddings(enc, ds, max_samples=n, sensor=args.sensor) for ds, n in sets]
    feats, sensors, labels = (np.concatenate([p[k] for p in parts]) for k in ("features", "sensors", "labels"))
    stats = plot_tsne(feats, sensors, labels, args.output, seed=args.seed)
    print(f"wrote {args.output}: 10-NN same sensor {stats['same_sensor']:.2f}, same label {stats['same_label']:.2f}")
    return 0


def curves(args) -> int:
    """Draw the training curves of the given runs."""
    from ..viz.curves import plot_curves  # here, not at the top: imports matplotlib (keeps anytouch --help fast)

    runs = {}
    for r in args.runs:
        name, sep, path = r.partition("=")
        if not sep:
            name, path = Path(r).name if Path(r).is_dir() else Path(r).parent.name, r
        runs[name] = path
    print(f"wrote {plot_curves(runs, args.output, keys=args.keys, smooth=args.smooth)}")
    return 0
