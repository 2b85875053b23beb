"""``anytouch adapt``: train a free sensor slot on a new sensor's frames, everything else frozen."""
from __future__ import annotations

from .args import CLIError, add_model_args, check_output_file, load_from_args, sensor_arg

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    """Add ``adapt`` to the ``anytouch`` subparsers ``sub``."""
    p = sub.add_parser("adapt", help="new sensor: train a free sensor slot on its frames, encoder frozen",
                       description="Fine-tune one unused sensor slot (default: the first free one not adapted yet, "
                                   "from 5) on unlabelled frames of a new sensor with the MAE loss; everything else "
                                   "stays frozen. The output checkpoint records the adapted slots. The alternative "
                                   "needing no training: --sensor universal.")
    p.add_argument("frames", nargs="+", help="image files or folders of the new sensor's frames")
    add_model_args(p)
    p.add_argument("--output", "-o", required=True, help="adapted checkpoint (.pth, our format)")
    p.add_argument("--slot", type=int, default=None, help="slot to train (default: first free and not yet adapted, "
                                                          "5..8)")
    p.add_argument("--init", type=sensor_arg, default=-1, help="slot start value: a sensor to copy (default universal)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    """Adapt the slot and save the model with the adaptation record."""
    import torch  # here, not at the top: keeps anytouch --help fast

    # here, not at the top: these import torch
    from ..adapt import adapt_sensor_slot, free_slots, recorded_slots
    from ..checkpoint import save_checkpoint
    from ..embed import find_inputs, iter_units

    check_output_file(args.output, (".pth", ".pt"), "--output (a checkpoint)")
    model = load_from_args(args, "model")
    done = recorded_slots(args.checkpoint)
    slot = args.slot
    if slot is None:  # never overwrite a slot adapted before unless asked to
        slot = next((s for s in free_slots(model.encoder.num_sensors) if s not in done), None)
        if slot is None:
            raise CLIError(f"every free sensor slot of {args.checkpoint} is adapted already ({done}); "
                           "pass --slot to train one of them again")
    size = model.encoder.image_size
    units = [u for u in find_inputs(args.frames) if u[0] == "image"]
    if not units:
        raise CLIError(f"no image frames found under {', '.join(args.frames)}")
    frames = torch.stack([x for *_, x in iter_units(units, size)])
    print(f"adapting on {len(frames)} frames")
    res = adapt_sensor_slot(model, frames, slot=slot, init=args.init, steps=args.steps, lr=args.lr,
                            batch_size=args.batch_size, seed=args.seed, log=print)
    config = {"adapt": {"slot": res.slot, "slots": sorted(set(done) | {res.slot}), "init": res.init,
                        "steps": res.steps, "lr": args.lr, "frames": len(frames),
                        "source_checkpoint": str(args.checkpoint), "mae_loss_before": res.eval_before,
                        "mae_loss_after": res.eval_after}}
    save_checkpoint(args.output, model.cpu(), config)
    print(f"MAE loss on the frames: {res.eval_before:.4f} -> {res.eval_after:.4f}; slot {res.slot} saved to "
          f"{args.output}\nuse it with: anytouch embed ... --checkpoint {args.output} --sensor {res.slot}")
    return 0
