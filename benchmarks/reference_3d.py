"""A 3D U-Net reference on the same cases, split and budget as a 2D training config (not a medseg model).

    python benchmarks/reference_3d.py CONFIG IMAGES LABELS [--epochs 40] [--steps 100] [--threads 2]

How good is a 2D model against a 3D one *on the same validation cases*? This trains MONAI's DynUNet (the nnU-Net
architecture: paired 3x3x3 convolutions with instance norm and leaky ReLU, strided downsampling,
transposed-convolution upsampling) on whole volumes, with the preprocessing, seeded split and fold of CONFIG (read
and split by :mod:`medseg.train_config`, so the validation cases are exactly those of a package trained with that
config), DiceCE with batch Dice, AdamW with medseg's warm-up and cosine schedule, a bf16 forward pass where the CPU has
native bf16 (else float32), and 3D versions of the augmentation medseg's 2D training uses (affine, intensity, noise,
gamma, smoothing; no flips). Validation runs whole volumes through MONAI's sliding-window inferer (gaussian blend)
every ``--val-every`` epochs and prints per-label mean Dice; at the end it prints mean / median / min Dice of the
best validation point and the training time. Nothing is written: the 3D network is a yardstick, not something
``medseg infer`` could run.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
import warnings
from pathlib import Path

from stderr_line import stderr_line

from medseg.errors import MedsegWarning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="medseg training config (preprocessing, labels, split)")
    parser.add_argument("images", type=Path)
    parser.add_argument("labels", type=Path)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--patch", type=int, nargs=3, default=[40, 56, 40], help="training patch and inference window")
    parser.add_argument("--width", type=int, default=16, help="features of the first level (doubled per level)")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--val-every", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # medseg's warnings, and its info lines on the cases read (label boxes zero-padded onto their images' grids)
    # (one line each, as the medseg command writes them: a line break or terminal escape in a file name escaped)
    logging.basicConfig(handlers=[_one_line_handler()])
    logging.getLogger("medseg").setLevel(logging.INFO)
    # medseg's own warnings are those log lines, as the medseg command tells them: Python's warning of each (a
    # MedsegWarning, in its two lines) told it twice
    warnings.filterwarnings("ignore", category=MedsegWarning)

    import numpy as np
    import torch
    from monai import transforms as mt
    from monai.inferers import SlidingWindowInferer
    from monai.losses import DiceCELoss
    from monai.networks.nets import DynUNet
    from monai.utils import set_determinism

    from medseg.device import native_bf16
    from medseg.errors import MedsegError
    from medseg.label_map import label_map
    from medseg.numbers import counted, dice_round_text
    from medseg.train import dice_per_label, learning_rate
    from medseg.train_config import read_config, seeded_split
    from medseg.training_cases import load_cases, pair_cases

    if args.threads:
        torch.set_num_threads(args.threads)
    set_determinism(seed=args.seed)
    try:  # a missing or unreadable config, folder or case: one line naming it, as evaluate_model.py says it
        config = read_config(args.config)
        train_pairs, val_pairs, described = seeded_split(pair_cases(args.images, args.labels), config["training"])
        train_cases, val_cases = load_cases(train_pairs, config), load_cases(val_pairs, config)
    except MedsegError as error:
        stderr_line(f"error: {error}")
        return 1
    labels = sorted(int(k) for k in config["labels"] if int(k) != 0)
    n_classes = len(labels) + 1
    classes = label_map(config["labels"]).classes_of(labels)  # the cases' labels hold class indices, as pred does
    print(f"{args.config.name}: {len(train_cases)} training / {counted(len(val_cases), 'validation case')} "
          f"({described})")

    patch = tuple(args.patch)
    augment = config["training"].get("augment", {})
    rotate = math.radians(float(augment.get("rotate_deg", 15)))
    scale = float(augment.get("scale", 0.15))
    prob = float(augment.get("prob", 0.8))
    pipeline = mt.Compose([
        mt.SpatialPadd(["image", "label"], patch, mode=("edge", "constant")),
        mt.RandSpatialCropd(["image", "label"], patch, random_size=False),
        mt.RandAffined(["image", "label"], prob=prob, rotate_range=(rotate,) * 3, scale_range=(scale,) * 3,
                       translate_range=(4, 4, 4), mode=("bilinear", "nearest"), padding_mode="border"),
        mt.RandScaleIntensityd("image", factors=float(augment.get("intensity_scale", 0.1)), prob=prob),
        mt.RandShiftIntensityd("image", offsets=float(augment.get("intensity_shift", 0.1)), prob=prob),
        mt.RandGaussianNoised("image", std=float(augment.get("noise_std", 0.05)), prob=prob),
        mt.RandAdjustContrastd("image", gamma=tuple(augment.get("gamma", [0.8, 1.25])), prob=prob),
        mt.RandGaussianSmoothd("image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0),
                               prob=float(augment.get("smooth_prob", 0.1))),
    ])
    pipeline.set_random_state(seed=args.seed)

    kernels = [[3, 3, 3]] * 4
    strides = [[1, 1, 1]] + [[2, 2, 2]] * 3
    net = DynUNet(3, 1, n_classes, kernels, strides, strides[1:],
                  filters=[args.width * 2**i for i in range(4)], norm_name="instance")
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    inferer = SlidingWindowInferer(patch, sw_batch_size=4, overlap=0.5, mode="gaussian", padding_mode="replicate")
    rng = np.random.default_rng(args.seed)

    def validate() -> dict[int, list[float]]:
        net.eval()
        scores: dict[int, list[float]] = {v: [] for v in labels}
        with torch.no_grad():
            for case in val_cases:
                pred = inferer(case.image[None], net).argmax(1)[0].numpy()
                for value, dice in zip(labels, dice_per_label(pred, case.label.numpy(), classes).values()):
                    if not math.isnan(dice):
                        scores[value].append(dice)
        net.train()
        return scores

    # medseg's own schedule: one warm-up epoch, then cosine decay
    schedule = {"learning_rate": args.learning_rate, "epochs": args.epochs, "warmup_epochs": 1, "schedule": "cosine"}
    bf16 = native_bf16("cpu")  # emulated bf16 (an AVX2 CPU) is several times slower than float32
    best, best_mean, best_epoch, started = None, -1.0, 0, time.perf_counter()
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(schedule, epoch)
        net.train()
        losses = []
        for _ in range(args.steps):
            batch = [pipeline({"image": train_cases[i].image, "label": train_cases[i].label[None]})
                     for i in rng.integers(len(train_cases), size=args.batch_size)]
            images = torch.stack([torch.as_tensor(b["image"]) for b in batch]).float()
            targets = torch.stack([torch.as_tensor(b["label"]) for b in batch]).round().long()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(images)
            loss = loss_fn(logits.float(), targets)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        line = f"epoch {epoch + 1:3d}  loss {statistics.mean(losses):.4f}"
        if (epoch + 1) % args.val_every == 0 or epoch + 1 == args.epochs:
            scores = validate()
            means = {v: statistics.mean(s) for v, s in scores.items()}
            line += "  val " + "  ".join(f"{config['labels'][str(v)]} {dice_round_text(m)}" for v, m in means.items())
            if statistics.mean(means.values()) > best_mean:
                best, best_mean, best_epoch = scores, statistics.mean(means.values()), epoch + 1
        print(line + f"  {time.perf_counter() - started:.0f}s elapsed", flush=True)

    print(f"best epoch {best_epoch}; training {(time.perf_counter() - started) / 60:.1f} min "
          f"({torch.get_num_threads()} torch threads)")
    print(f"{'label':<12} {'n':>3}  mean Dice   median     min")
    for value, scores in best.items():
        cells = [" " + dice_round_text(v) for v in (statistics.mean(scores), statistics.median(scores), min(scores))]
        print(f"{config['labels'][str(value)]:<12} {len(scores):>3} {cells[0]:>10} {cells[1]:>8} {cells[2]:>7}")
    return 0


def _one_line_handler() -> logging.Handler:
    """A stderr handler writing each message as one line (:func:`medseg.one_line.escaped_line`)."""
    from medseg.one_line import escaped_line

    class OneLine(logging.Formatter):
        def formatMessage(self, record: logging.LogRecord) -> str:
            return escaped_line(record.message)

    handler = logging.StreamHandler()
    handler.setFormatter(OneLine())
    return handler


if __name__ == "__main__":
    raise SystemExit(main())
