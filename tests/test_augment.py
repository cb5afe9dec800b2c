"""Batched slice augmentation: crops, warps images and labels together, reproducible from its seed."""

from __future__ import annotations

import numpy as np
import torch

from medseg.augment import SliceAugment

STILL = {"prob": 0.0, "rotate_deg": 0, "scale": 0, "translate_px": 0, "flip_axes": []}


def _slice(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(2, height, width, generator=generator)
    label = torch.zeros(height, width, dtype=torch.uint8)
    label[height // 4: height // 2, width // 3: width - 2] = 1
    label[height // 2: height - 3, 2: width // 2] = 2
    return image, label


def test_without_randomness_a_plane_of_patch_size_comes_back_unchanged():
    image, label = _slice(20, 16)
    out, targets = SliceAugment((20, 16), STILL, seed=0)([image], [label], np.random.default_rng(0))
    assert out.shape == (1, 2, 20, 16) and targets.shape == (1, 1, 20, 16)
    torch.testing.assert_close(out[0], image, atol=1e-5, rtol=0)
    assert torch.equal(targets[0, 0].to(torch.uint8), label)


def test_larger_planes_are_cropped_and_smaller_ones_centred_with_repeated_edges():
    big, big_label = _slice(30, 25, seed=1)
    small, small_label = _slice(10, 12, seed=2)
    out, targets = SliceAugment((16, 16), STILL, seed=0)([big, small], [big_label, small_label],
                                                         np.random.default_rng(3))
    assert out.shape == (2, 2, 16, 16)
    # the big slice: an exact 16x16 window of the input, label cut at the same place
    windows = [(i, j) for i in range(30 - 15) for j in range(25 - 15)
               if torch.allclose(out[0], big[:, i:i + 16, j:j + 16], atol=1e-5)]
    assert len(windows) == 1
    i, j = windows[0]
    assert torch.equal(targets[0, 0].to(torch.uint8), big_label[i:i + 16, j:j + 16])
    # the small slice sits in the middle; outside it the edge values repeat
    top, left = 3, 2  # (16 - 10) / 2 and (16 - 12) / 2
    torch.testing.assert_close(out[1, :, top:top + 10, left:left + 12], small, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1, :, 0, left:left + 12], small[:, 0], atol=1e-5, rtol=0)
    assert torch.equal(targets[1, 0, top:top + 10, left:left + 12].to(torch.uint8), small_label)


def test_warps_move_labels_with_the_image_and_are_reproducible():
    settings = {"prob": 1.0, "rotate_deg": 30, "scale": 0.2, "translate_px": 3, "flip_axes": [0, 1]}
    labels = [_slice(40, 36, seed=s)[1] for s in range(8)]
    images = [lbl[None].float().repeat(2, 1, 1) * 10.0 for lbl in labels]  # the image shows the label
    augment = SliceAugment((32, 32), settings, seed=0)
    out, targets = augment(images, labels, np.random.default_rng(5))
    again, again_targets = SliceAugment((32, 32), settings, seed=0)(images, labels, np.random.default_rng(5))
    assert torch.equal(out, again) and torch.equal(targets, again_targets)
    agree = (torch.round(out[:, 0] / 10.0) == targets[:, 0]).float().mean()
    assert agree > 0.97  # bilinear image and nearest label differ only along edges
    assert not torch.equal(targets[:, 0, :, :].to(torch.uint8), torch.stack([lbl[4:36, 2:34] for lbl in labels]))
    assert set(torch.unique(targets).tolist()) <= {0.0, 1.0, 2.0}
