"""How much memory one forward pass of a batch of tiles takes at inference, estimated from a package's declared
shapes alone, and the check that refuses, before its network is built, a package one of whose tiles the machine
cannot hold.

A package's ``model.json`` declares its classes and tile size: a package of a few kB (a U-Net one channel wide)
declaring 4096 classes on 2048² tiles made each tile's logits 64 GiB, and the kernel ended the process (or the
machine swapped) without a word of why. The image's own memory is the guard of
:func:`medseg.preprocess.check_grid_size`.
"""

from __future__ import annotations

import math

from medseg.errors import ModelPackageError
from medseg.numbers import gib_text

__all__ = ["check_tile_pass_fits", "package_tile_bytes", "refuse_tile_over_memory", "tile_over_memory",
           "tile_pass_bytes"]

# bytes per pixel of a tile for each class (the logits, their softmax or argmax and the blending's copy: 7.6
# measured for 1024 classes on 256² tiles, on the CPU in fp32), and per feature-map element of the U-Net's levels
# (a convolution's and a ReLU's outputs and the skip connections kept for the decoder: 10-16 measured for widths
# 32-128); the estimate is meant as an upper bound, as the image's guard's is
_BYTES_PER_CLASS_PIXEL = 12
_BYTES_PER_ELEMENT = 24
_BYTES_PER_INPUT_VALUE = 4


def tile_pass_bytes(architecture: dict, batch_size: int, roi_size) -> int:
    """Memory one forward pass of ``batch_size`` tiles of ``roi_size`` takes, estimated: each tile (padded to a
    multiple of 2^depth, as the U-Net pads it) holds its input, its class logits and, at every level l, width·2^l
    feature maps on a 4^l-th of its pixels."""
    depth, width = int(architecture["depth"]), int(architecture["base_width"])
    step = 2 ** depth
    area = math.prod(-(-int(n) // step) * step for n in roi_size)
    elements = width * sum(0.5 ** level for level in range(depth + 1))  # per pixel of the tile, all levels
    per_pixel = (_BYTES_PER_CLASS_PIXEL * int(architecture["n_classes"]) + _BYTES_PER_ELEMENT * elements
                 + _BYTES_PER_INPUT_VALUE * int(architecture["in_channels"]))
    return int(batch_size * area * per_pixel)


def package_tile_bytes(package) -> int:
    """What one forward pass of one of ``package``'s tiles takes (:func:`tile_pass_bytes` of its declared shapes)."""
    return tile_pass_bytes(package.config["architecture"], 1, [int(n) for n in package.inference["roi_size"]])


def tile_over_memory(package) -> str | None:
    """Where one tile of ``package`` needs more than the machine's physical memory in a forward pass on the CPU,
    what says so (naming its ``model.json``, the tile, the estimate and the memory); else None (as where the memory
    is not known). `medseg models` warns with it; :func:`check_tile_pass_fits` refuses with it."""
    from medseg import resources

    memory = resources.physical_memory()
    needed = package_tile_bytes(package)
    if memory is None or needed <= memory:
        return None
    arch = package.config["architecture"]
    return (f"{package.path / 'model.json'}: {_tile_text(package)} and a U-Net of width {arch['base_width']} and depth "
            f"{arch['depth']} needs about {gib_text(needed)} of memory, more than this machine's {gib_text(memory)}")


def _tile_text(package) -> str:
    roi, classes = [int(n) for n in package.inference["roi_size"]], package.config["architecture"]["n_classes"]
    return f"one forward pass of a {'×'.join(map(str, roi))} tile with {classes} classes"


def check_tile_pass_fits(package, device: str) -> None:
    """Refuse, on the CPU, a package one of whose tiles needs more than the machine's physical memory in a forward
    pass, naming its ``model.json``: no batch size makes it fit. A batch of tiles is not charged: a slab holds
    fewer tiles than ``--batch-size`` where a package has many classes (its slab is then one slice), and a batch size
    worked with before must not be turned away by an upper bound. A GPU's own memory is not charged here either: a
    pass it cannot hold is tried again with fewer tiles (:class:`medseg.inference.Segmenter`). A tile that fits the
    machine but not this process's cgroup (a SLURM job's memory) is warned about, as an image is
    (:func:`medseg.memory_guard.warn_over_cgroup`)."""
    from medseg import resources
    from medseg.memory_guard import warn_over_cgroup

    if not str(device).startswith("cpu"):
        return
    refuse_tile_over_memory(package, device)
    warn_over_cgroup(package.path / "model.json", package_tile_bytes(package), resources.physical_memory(),
                     _tile_text(package))


def refuse_tile_over_memory(package, device: str) -> None:
    """The refusal of :func:`check_tile_pass_fits` alone, without its cgroup warning: a cohort job asks it before a
    case's earlier results go, and the network's build warns once as it checks again."""
    if not str(device).startswith("cpu"):
        return
    over = tile_over_memory(package)
    if over is not None:
        raise ModelPackageError(f"{over}; run it on a machine with more memory, or check the package's "
                                "inference.roi_size and architecture.n_classes")
