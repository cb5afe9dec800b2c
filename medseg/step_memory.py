"""How much memory one training step takes, estimated from the configuration alone, and the check that refuses a
CPU step the machine cannot hold before any case is read (the kernel would end the process without a word)."""

from __future__ import annotations

import math

from medseg.errors import TrainingError
from medseg.network_shapes import state_shapes
from medseg.numbers import gib_text

__all__ = ["check_step_fits", "training_step_bytes"]

# bytes of activations kept for the backward pass per feature-map element of a U-Net level (a convolution's, a
# norm's and a ReLU's outputs, and the decoder's concatenations), measured on the CPU in fp32 for widths 16-64,
# depths 2-4, 64- to 256-pixel patches and batches 8-64: the estimate came to 0.6-1.1x of what a step took (its
# peak less the interpreter's and torch's own); under bf16 autocast a step takes about 0.55x of its fp32 memory
_BYTES_PER_ELEMENT = 48
_BF16_SHARE = 0.55


def training_step_bytes(architecture: dict, batch_size: int, patch, precision: str = "fp32") -> int:
    """Memory one training step takes, estimated: the activations of ``batch_size`` patches (padded to a multiple
    of 2^depth, as the U-Net pads them) at every level, plus weights, gradients and AdamW's two moments."""
    depth, width = int(architecture["depth"]), int(architecture["base_width"])
    step = 2 ** depth
    area = math.prod(-(-int(n) // step) * step for n in patch)
    # level l holds width·2^l channels on area/4^l pixels: width·area·2^-l elements, summed over the levels
    elements = width * area * sum(0.5 ** level for level in range(depth + 1))
    activations = batch_size * elements * _BYTES_PER_ELEMENT * (_BF16_SHARE if precision == "bf16" else 1.0)
    parameters = sum(math.prod(shape) for shape in state_shapes(architecture).values())
    return int(activations + 16 * parameters)


def check_step_fits(architecture: dict, settings: dict, device: str, memory: int | None, precision: str = "fp32",
                    source: object = "training", where: str | None = None) -> None:
    """Refuse a CPU training step whose estimate exceeds ``memory`` bytes (the machine's); warn where it exceeds
    this process's cgroup limit instead (a SLURM job's memory: the estimate is no exact bound, and a job sized from
    experience is not turned away). ``settings`` are a config's checked training settings
    (:func:`medseg.train_config.check_config`); ``source`` names the run in the warning, ``where`` (the config
    file) starts the error."""
    from medseg.memory_guard import warn_over_cgroup

    if not str(device).startswith("cpu") or memory is None:
        return
    patch = tuple(settings["patch_size"])
    arch = architecture
    needed = training_step_bytes(arch, int(settings["batch_size"]), patch, precision)
    what = (f"a training step of {settings['batch_size']} {'×'.join(map(str, patch))} patches with a U-Net of "
            f"width {arch['base_width']} and depth {arch['depth']}")
    if needed > memory:
        raise TrainingError(f"{f'{where}: ' if where else ''}{what} needs about {gib_text(needed)} of memory, "
                            f"more than this machine's "
                            f"{gib_text(memory)}; lower training.batch_size, training.patch_size or "
                            "architecture.base_width")
    warn_over_cgroup(source, needed, memory, what)
