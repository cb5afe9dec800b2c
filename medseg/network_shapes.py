"""The tensor names and shapes of a :class:`medseg.network.UNet2D`'s weights, from its architecture settings alone.

Loading a model package compares these with the weights file's header, so that a ``model.json`` whose width,
depth, norm, channels or classes were edited after training is refused where the package is loaded (a workflow's
planning, ``medseg models``) without importing torch. A test holds them equal to the module's own ``state_dict``.
"""

from __future__ import annotations

__all__ = ["state_shapes"]


def state_shapes(architecture: dict) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor in ``UNet2D(UNetConfig(**architecture)).state_dict()`` (keys of
    ``architecture`` that :class:`~medseg.network.UNetConfig` does not take, such as ``type``, are ignored)."""
    in_channels = int(architecture.get("in_channels", 1))
    n_classes = int(architecture.get("n_classes", 2))
    base = int(architecture.get("base_width", 64))
    depth = int(architecture.get("depth", 4))
    norm = architecture.get("norm", "batch")
    widths = [base * 2**level for level in range(depth + 1)]
    shapes: dict[str, tuple[int, ...]] = {}
    channels = in_channels
    for level, width in enumerate(widths[:-1]):
        shapes.update(_double_conv(f"down.{level}", channels, width, norm))
        channels = width
    shapes.update(_double_conv("bottom", widths[-2], widths[-1], norm))
    for index, width in enumerate(reversed(widths[:-1])):
        shapes[f"up.{index}.weight"] = (width * 2, width, 2, 2)  # a transposed convolution: (in, out, kh, kw)
        shapes[f"up.{index}.bias"] = (width,)
    for index, width in enumerate(reversed(widths[:-1])):
        shapes.update(_double_conv(f"up_conv.{index}", width * 2, width, norm))
    shapes["head.weight"] = (n_classes, widths[0], 1, 1)
    shapes["head.bias"] = (n_classes,)
    return shapes


def _double_conv(prefix: str, in_ch: int, out_ch: int, norm: str) -> dict[str, tuple[int, ...]]:
    """Two 3x3 convolutions, each followed by the norm (if any) and a ReLU, as numbered in a ``Sequential``."""
    shapes: dict[str, tuple[int, ...]] = {}
    index = 0
    for c_in in (in_ch, out_ch):
        shapes[f"{prefix}.{index}.weight"] = (out_ch, c_in, 3, 3)
        if norm == "none":
            shapes[f"{prefix}.{index}.bias"] = (out_ch,)
        index += 1
        if norm in ("batch", "instance"):
            shapes[f"{prefix}.{index}.weight"] = (out_ch,)
            shapes[f"{prefix}.{index}.bias"] = (out_ch,)
            if norm == "batch":
                shapes[f"{prefix}.{index}.running_mean"] = (out_ch,)
                shapes[f"{prefix}.{index}.running_var"] = (out_ch,)
                shapes[f"{prefix}.{index}.num_batches_tracked"] = ()
            index += 1
        index += 1  # the ReLU
    return shapes
