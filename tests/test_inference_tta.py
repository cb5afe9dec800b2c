"""Test-time ensembles: flips (along the slicing axis they flip the context channels too) and slicing views."""

from __future__ import annotations

import torch

from medseg.inference import Segmenter, context_stack
from medseg.network import UNet2D, UNetConfig
from medseg.package import ModelPackage


def _segmenter(net, flips: list[int], axis: int | list[int] = 2) -> Segmenter:
    config = {
        "format": "medseg-model/1", "name": "t",
        "architecture": {"in_channels": 3, "n_classes": 3, "base_width": 4, "depth": 2},
        "labels": {"0": "a", "1": "b", "2": "c"}, "preprocessing": {"intensity": {"kind": "none"}},
        "inference": {"slice_axis": axis, "roi_size": [16, 16], "context_slices": 1, "flip_tta": flips},
        "weights": {"file": "w.safetensors", "sha256": "0" * 64},
    }
    return Segmenter(ModelPackage(".", config), device="cpu", precision="fp32", net=net)


def test_flip_along_slicing_axis_is_a_true_volume_flip():
    torch.manual_seed(0)
    net = UNet2D(UNetConfig(in_channels=3, n_classes=3, base_width=4, depth=2)).eval()
    with torch.no_grad():
        net.head.weight.mul_(50.0)  # spread the logits so argmax varies across the volume
    image = torch.randn(1, 16, 16, 10) + torch.linspace(-2, 2, 10)  # differs below and above each slice

    def probs(volume: torch.Tensor) -> torch.Tensor:  # (classes, X, Y, Z), each slice with its neighbours
        with torch.no_grad():
            stack = context_stack(volume, 0, volume.shape[-1], 1).permute(3, 0, 1, 2)
            return torch.softmax(net(stack), dim=1).permute(1, 2, 3, 0)

    expected = torch.argmax(probs(image) + probs(image.flip(3)).flip(3), dim=0).to(torch.uint8)
    plain = _segmenter(net, []).predict(image)
    with_tta = _segmenter(net, [2]).predict(image)
    assert len(torch.unique(plain)) == 3
    assert (with_tta != expected).float().mean() < 1e-3  # equal up to float ties
    assert not torch.equal(with_tta, plain)  # before the fix this flip was a no-op


def test_view_ensemble_averages_softmax_over_slicing_axes():
    torch.manual_seed(1)
    net = UNet2D(UNetConfig(in_channels=3, n_classes=3, base_width=4, depth=2)).eval()
    with torch.no_grad():
        net.head.weight.mul_(50.0)
    image = torch.randn(1, 16, 16, 16)

    def probs(axis: int) -> torch.Tensor:  # (classes, X, Y, Z) from slices along ``axis`` (planes = the roi)
        volume = torch.movedim(image, 1 + axis, -1)
        with torch.no_grad():
            stack = context_stack(volume, 0, volume.shape[-1], 1).permute(3, 0, 1, 2)
            out = torch.softmax(net(stack), dim=1).permute(1, 2, 3, 0)
        return torch.movedim(out, -1, 1 + axis)

    expected = torch.argmax(probs(0) + probs(1) + probs(2), dim=0).to(torch.uint8)
    views = _segmenter(net, [], [0, 1, 2])
    ensemble = views.predict(image)
    assert ensemble.shape == (16, 16, 16)
    assert (ensemble != expected).float().mean() < 1e-3
    assert views.window_net.tiles == 3 * 16  # one tile per slice of each view
    assert views.slices_to_label(tuple(image.shape)) == 48
    single = [_segmenter(net, [], axis).predict(image) for axis in range(3)]
    assert all(not torch.equal(ensemble, s) for s in single)
    assert torch.equal(_segmenter(net, [], [1]).predict(image), single[1])  # a one-item list is that axis
