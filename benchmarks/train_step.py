"""Where a training step's time goes: augmentation (per-slice MONAI dictionary transforms vs. the batched
``SliceAugment``) and the network step in float32 vs. bf16 autocast.

    python benchmarks/train_step.py [--threads 2] [--steps 20] [--width 16] [--depth 4] [--patch 48 48]

Uses synthetic 2.5D slices of hippocampus-crop size (5 channels, planes of 35–50 pixels) so it runs anywhere;
prints seconds per batch and the ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch


def per_slice_monai(patch: tuple[int, int], seed: int):
    """The per-slice dictionary pipeline the batched augmentation replaced (same kinds of transforms)."""
    from monai.transforms import (
        Compose,
        RandAdjustContrastd,
        RandAffined,
        RandGaussianNoised,
        RandGaussianSmoothd,
        RandScaleIntensityd,
        RandShiftIntensityd,
        RandSpatialCropd,
        SpatialPadd,
    )

    keys = ("image", "label")
    compose = Compose([
        SpatialPadd(keys=keys, spatial_size=patch, mode="edge"),
        RandSpatialCropd(keys=keys, roi_size=patch, random_size=False),
        RandAffined(keys=keys, prob=0.8, rotate_range=(math.radians(15),), scale_range=(0.15, 0.15),
                    translate_range=(4, 4), mode=("bilinear", "nearest"), padding_mode="border"),
        RandGaussianNoised(keys="image", prob=0.4, std=0.05),
        RandGaussianSmoothd(keys="image", prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0)),
        RandScaleIntensityd(keys="image", prob=0.4, factors=0.1),
        RandShiftIntensityd(keys="image", prob=0.4, offsets=0.1),
        RandAdjustContrastd(keys="image", prob=0.4, gamma=(0.8, 1.25)),
    ])
    compose.set_random_state(seed=seed)
    return compose


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patch", type=int, nargs=2, default=(48, 48))
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    torch.set_num_threads(args.threads)
    from monai.data import set_track_meta
    from monai.losses import DiceCELoss

    from medseg.augment import SliceAugment
    from medseg.network import UNet2D, UNetConfig

    patch = tuple(args.patch)
    rng = np.random.default_rng(0)
    shapes = [(50, 36), (35, 36), (35, 50)]  # the three views of a median hippocampus crop
    slices = [torch.randn(5, *shapes[i % 3]) for i in range(args.batch)]
    labels = [(torch.rand(*shapes[i % 3]) * 3).floor().to(torch.uint8) for i in range(args.batch)]

    results = {}
    for tracking in (True, False):
        set_track_meta(tracking)
        old = per_slice_monai(patch, 0)
        results[f"per-slice MONAI dict transforms, metadata {'on' if tracking else 'off'}"] = timed(
            lambda old=old: [old({"image": s, "label": lbl[None].float()}) for s, lbl in zip(slices, labels)],
            args.steps)
    batched = SliceAugment(patch, {"rotate_deg": 15, "scale": 0.15, "translate_px": 4, "noise_std": 0.05,
                                   "smooth_prob": 0.1, "intensity_scale": 0.1, "intensity_shift": 0.1,
                                   "gamma": [0.8, 1.25], "prob": 0.8}, seed=0)
    results["batched SliceAugment, metadata off"] = timed(lambda: batched(slices, labels, rng), args.steps)
    set_track_meta(True)

    images, targets = batched(slices, labels, rng)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        net = UNet2D(UNetConfig(in_channels=5, n_classes=3, base_width=args.width, depth=args.depth, norm="batch"))
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step(net=net, optimizer=optimizer, precision=precision) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = net(images)
            loss_fn(logits.float(), targets).backward()
            optimizer.step()

        results[f"network step (forward + backward + AdamW), {precision}"] = timed(step, args.steps)

    print(f"batch {args.batch} slices of 5 channels, patch {patch[0]}x{patch[1]}, "
          f"U-Net width {args.width} depth {args.depth}, {args.threads} torch threads")
    for name, seconds in results.items():
        print(f"{name:58s} {seconds * 1000:8.1f} ms/batch")
    names = list(results)
    print(f"augmentation: per-slice (metadata on) / batched = {results[names[0]] / results[names[2]]:.1f}x, "
          f"metadata on / off = {results[names[0]] / results[names[1]]:.1f}x")
    print(f"network step: fp32 / bf16 = {results[names[3]] / results[names[4]]:.2f}x")
    old_step = results[names[0]] + results[names[3]]
    new_step = results[names[2]] + results[names[4]]
    speed = old_step / new_step
    change = f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower (bf16 emulated?)"
    print(f"whole step (augmentation + network): before (per-slice, fp32) {old_step * 1000:.0f} ms, now (batched, "
          f"bf16) {new_step * 1000:.0f} ms, {change}")


if __name__ == "__main__":
    main()
