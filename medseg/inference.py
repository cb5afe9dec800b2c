"""Slice-wise 2D inference with sliding-window tiling.

The model-space volume ``(C, X, Y, Z)`` is turned so that the slicing axis is last and cut into slabs of
consecutive slices. Each slab goes through MONAI's :class:`~monai.inferers.SlidingWindowInferer` with a
window of ``(roi_h, roi_w, 1)``: tiles of many slices are batched into one forward of the 2D network,
overlapping tiles are blended with a gaussian (or constant) weight (planes smaller than the window are padded
to it by repeating their edges, as in training), and the slab's logits are reduced to
uint8 labels by argmax before the next slab starts, so memory grows neither with the number of slices nor
with the number of classes. Neighbouring slices are stacked as extra input channels when the package asks
for context (2.5D). Flip test-time augmentation averages softmax over the declared flips.

A package may name several slicing axes (``slice_axis: [0, 1, 2]``): the same 2D network then runs along each
axis and the softmax outputs are averaged in model space before the argmax (an ensemble over views). That
path keeps one float32 probability volume per class, so its memory grows with the volume and the classes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from torch import nn

from medseg import stopping
from medseg.defaults import DEFAULT_BATCH_SIZE
from medseg.device import (
    DeviceChoice,
    gpu_free_text,
    native_bf16,
    resolve_device,
    resolve_precision,
    slow_bf16_warning,
)
from medseg.errors import DeviceError, InputError, ModelPackageError
from medseg.io.files import is_path, type_text
from medseg.package import ModelPackage, load_package
from medseg.segmenter_plan import slice_axes  # torch-free: reading an input needs it, not the network
from medseg.settings_named import ANY, setting
from medseg.tile_memory import check_tile_pass_fits

__all__ = ["OUT_OF_MEMORY", "Segmenter", "SliceNet", "context_stack", "is_out_of_memory", "out_of_memory",
           "slice_axes", "without_tf32"]

log = logging.getLogger(__name__)

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

# torch.OutOfMemoryError is new in torch 2.5; the CUDA one (an alias there) is older
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
# Apple MPS runs out as a plain RuntimeError (torch's MPS allocator raises no OutOfMemoryError): known by its message
_MPS_OUT_OF_MEMORY = "MPS backend out of memory"


class _SlabProgress:
    """A slab's slices told to ``progress`` as its tiles go through the network: whole slices, never more than the
    slab's (a pass tried again after running out of memory counts its tiles again), the rest at :meth:`finish`."""

    def __init__(self, progress: Callable[[int], None] | None, slices: int, tiles_a_slice: int) -> None:
        self.progress = progress
        self.slices = slices
        self.tiles_a_slice = max(1, tiles_a_slice)
        self.done = 0  # tiles through the network
        self.told = 0  # slices told

    def tiles(self, count: int) -> None:
        self.done += count
        self._tell(min(self.slices, self.done // self.tiles_a_slice))

    def finish(self) -> None:
        self._tell(self.slices)

    def _tell(self, slices: int) -> None:
        if self.progress is not None and slices > self.told:
            self.progress(slices - self.told)
            self.told = slices


class SliceNet(nn.Module):
    """Wraps a 2D network so that it takes 3D windows ``(B, C, H, W, 1)`` from the sliding window."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.tiles = 0  # tiles evaluated so far, for benchmarks and sidecars
        self.last_batch = 0  # tiles in the latest forward pass, counted or not (one out of memory is not)
        self.ran_out = False  # whether the latest out-of-memory error arose inside the network (not in the stitching)
        self.on_tiles: Callable[[int], None] | None = None  # told the tiles of each forward pass done (progress)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_batch = x.shape[0]
        try:
            out = self.net(x[..., 0]).unsqueeze(-1)
        except Exception as error:
            if is_out_of_memory(error):
                self.ran_out = True
            raise
        self.tiles += x.shape[0]
        if self.on_tiles is not None:
            self.on_tiles(x.shape[0])
        return out


_tf32_lock = threading.Lock()
_tf32_holders = 0  # fp32 passes running now, in any thread
_tf32_caller: tuple = ()  # the settings the first of them found


def _tf32_settings() -> tuple:
    """cuDNN convolutions' and matrix products' float32 settings, as this torch has them: ``fp32_precision``
    (``"tf32"``, ``"ieee"``, ``"none"``) from torch 2.9, whose old ``allow_tf32`` flags raise a RuntimeError once a
    caller has set the new ones (a "mix of the legacy and new APIs"); the old flags before it."""
    conv, matmul = getattr(torch.backends.cudnn, "conv", None), torch.backends.cuda.matmul
    if hasattr(conv, "fp32_precision"):
        return conv.fp32_precision, matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, matmul.allow_tf32


def _set_tf32_settings(settings: tuple) -> None:
    conv, matmul = getattr(torch.backends.cudnn, "conv", None), torch.backends.cuda.matmul
    if hasattr(conv, "fp32_precision"):
        conv.fp32_precision, matmul.fp32_precision = settings
    else:
        torch.backends.cudnn.allow_tf32, matmul.allow_tf32 = settings


@contextlib.contextmanager
def without_tf32():
    """fp32 as recorded: cuDNN's TF32 convolutions (on by default in torch; an Ampere or later GPU then runs a float32
    convolution with a 10-bit mantissa) and TF32 matrix products off while the network runs, the caller's settings
    put back after it. The CPU reads neither. The settings are the process's: passes in several threads (Segmenters
    used from a pool) are counted, the first turns TF32 off and the last one out puts the caller's settings back
    (each putting back what it found turned TF32 on under a pass still running, and left it off at the end)."""
    global _tf32_holders, _tf32_caller
    with _tf32_lock:
        if _tf32_holders == 0:
            _tf32_caller = _tf32_settings()
            _set_tf32_settings(("ieee", "ieee") if isinstance(_tf32_caller[0], str) else (False, False))
        _tf32_holders += 1
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_holders -= 1
            if _tf32_holders == 0:
                _set_tf32_settings(_tf32_caller)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` itself is a device's out-of-memory error: torch's (CUDA, ROCm), or Apple MPS's
    ``RuntimeError`` that says so."""
    return isinstance(error, OUT_OF_MEMORY) or (type(error) is RuntimeError
                                               and str(error).startswith(_MPS_OUT_OF_MEMORY))


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device's out-of-memory error (:func:`is_out_of_memory`) or wraps one: MONAI re-raises
    an error in its blending-weight map as a plain ``RuntimeError`` whose cause is the out-of-memory error."""
    seen = 0
    while error is not None and seen < 8:
        if is_out_of_memory(error):
            return True
        # an error raised while an out-of-memory error was handled is another error, unless it names it its cause
        error, seen = error.__cause__ or (None if error.__suppress_context__ else error.__context__), seen + 1
    return False


def context_stack(volume: torch.Tensor, start: int, stop: int, context: int) -> torch.Tensor:
    """Slices ``start:stop`` of ``volume`` (C, X, Y, Z) with ``context`` neighbours each side as channels.

    Returns ``(C * (2*context+1), X, Y, stop-start)``; edge slices repeat the first/last slice.
    """
    if context == 0:
        return volume[..., start:stop]
    depth = volume.shape[-1]
    offsets = torch.arange(-context, context + 1)
    index = (torch.arange(start, stop)[:, None] + offsets[None, :]).clamp(0, depth - 1)  # (S, 2k+1)
    gathered = volume[..., index]  # (C, X, Y, S, 2k+1)
    c, x, y, s, k = gathered.shape
    return gathered.permute(0, 4, 1, 2, 3).reshape(c * k, x, y, s)


def argmax_labels(scores: torch.Tensor) -> torch.Tensor:
    """``argmax`` over the class axis (dim 0) as uint8, in one pass per class.

    Same result as ``torch.argmax(scores, 0)`` (the first class wins ties) but several times faster on the CPU,
    where a reduction over the outermost axis of a large tensor is slow.
    """
    best = scores[0].clone()
    dtype = torch.uint8 if scores.shape[0] <= 256 else torch.int32
    labels = torch.zeros(scores.shape[1:], dtype=dtype, device=scores.device)
    for value in range(1, scores.shape[0]):
        labels.masked_fill_(scores[value] > best, value)
        torch.maximum(best, scores[value], out=best)
    return labels


class Segmenter:
    """A model package loaded once on a device, ready to label many volumes.

    ``package``: a :class:`~medseg.package.ModelPackage`, or a shipped model's name or a package folder (loaded with
    :func:`~medseg.package.load_package`, its weights checked). ``device`` and ``precision`` as ``medseg infer``'s
    ``--device`` and ``--precision`` (the device also as a ``torch.device``; one that is not there is a
    :class:`~medseg.errors.DeviceError`, never a fallback); ``overlap`` replaces the package's tile overlap.
    ``invocation``: what ran it (``{"argv": [...], "cwd": ...}`` from the command line), recorded in each sidecar as it
    is. One segmenter serves one thread at a time.
    """

    def __init__(
        self,
        package: ModelPackage | str | os.PathLike,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        overlap: float | None = None,
        slab_voxels: int = 1 << 24,
        net: nn.Module | None = None,
        batch_setting: str | None = None,
        invocation: dict | None = None,
        batch_note: str | None = None,
    ) -> None:
        if is_path(package):  # a name or a folder, as scoring takes one
            package = load_package(package)
        if not isinstance(package, ModelPackage):  # None failed on "'NoneType' object has no attribute 'inference'"
            raise ModelPackageError(f"{type_text(package)} given as the model package; give a shipped model's "
                                    "name, a package folder or a loaded medseg.package.ModelPackage")
        self.package = package
        self.invocation = invocation
        self.device_choice: DeviceChoice = resolve_device(device)
        self.device = torch.device(self.device_choice.device)
        self.precision = resolve_precision(precision, self.device_choice.device)
        if self.precision == "bf16" and not native_bf16(self.device_choice.device):
            log.warning(slow_bf16_warning(self.device_choice.device, setting("precision", "bf16")))
        settings = package.inference
        self.slice_axes = slice_axes(settings)
        self.slice_axis = self.slice_axes[0]
        self.roi_size = tuple(int(v) for v in settings["roi_size"])
        given = "given" if overlap is not None else f"model {package.name}'s inference.overlap"
        overlap = settings["overlap"] if overlap is None else overlap
        if isinstance(overlap, bool) or not isinstance(overlap, (int, float, np.integer, np.floating)):
            # "0.5" from a notebook: float() took it, and "x" raised Python's own ValueError
            raise InputError(f"tile overlap {overlap!r} ({given}): give a number, a fraction from 0 to below 1")
        self.overlap = float(overlap)
        if not 0 <= self.overlap < 1:  # NaN included; MONAI's tiles need an overlap below 1 (as model.json's)
            raise InputError(f"tile overlap {self.overlap} ({given}): give a fraction from 0 to below 1")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            # 2.5 was taken as 2, "x" raised Python's own ValueError
            raise InputError(f"batch size {batch_size!r}: give a whole number of tiles per forward pass, 1 or more")
        self.blend = settings["blend"]
        self.context = int(settings["context_slices"])
        # one set of flips, in one order: [1, 0] sums the flipped softmaxes as [0, 1] does, to the last bit
        self.flips = sorted({int(a) for a in settings.get("flip_tta") or []})
        self.batch_size = int(batch_size)
        self.slab_voxels = int(slab_voxels)
        self.n_classes = int(package.config["architecture"]["n_classes"])
        # ``net`` lets training validate its network in memory with exactly this code path (``batch_setting``:
        # what sets ``batch_size`` there, for the out-of-memory warning)
        self.batch_setting = batch_setting
        # the warning's note in place of "<batch_setting> sets it", where no setting of the caller's sets it (a rerun
        # of verify keeps the batch its sidecar records)
        self.batch_note = batch_note
        if net is None:  # a package's declared classes and tile, before its network is built (training passes its own)
            check_tile_pass_fits(package, self.device_choice.device)
        try:
            self.net = package.build_network(str(self.device)) if net is None else net
        except Exception as error:  # a GPU that other processes fill: one line, not torch's traceback
            if not is_out_of_memory(error):
                raise
            raise DeviceError(f"{self.device}: out of GPU memory placing model {package.name}'s network on it"
                              f"{gpu_free_text(self.device)}; free GPU memory (other processes may hold it), or run "
                              f"with {setting('device', 'cpu')}") from None
        self.window_net = SliceNet(self.net)
        # where each slab, its blended logits and their weights are held: the network's device, until that device
        # runs out of memory outside the network (then CPU memory, each batch of tiles still going to the device)
        self.stitch_device = self.device
        self.inferer = self._inferer()

    def __repr__(self) -> str:
        """The model it runs, on which device and in which precision, as a notebook cell shows it (it was the
        object's address)."""
        return (f"Segmenter(model={self.package.name!r}, sha256='{self.package.sha256[:12]}…', device="
                f"{str(self.device)!r}, precision={self.precision!r}, batch_size={self.batch_size})")

    def _inferer(self) -> SlidingWindowInferer:
        # A plane smaller than the tile is padded to it (edges repeated, centred) rather than cut to a smaller
        # tile: training presents small planes to the network the same way (``SliceAugment``), and a network
        # can depend on it: one trained on 40-pixel patches scored 0.74 Dice on clipped 35-pixel planes and
        # 0.89 on the same planes padded to 40.
        return SlidingWindowInferer(
            roi_size=(*self.roi_size, 1),
            sw_batch_size=self.batch_size,
            overlap=(self.overlap, self.overlap, 0.0),
            mode=self.blend,
            sigma_scale=0.125,
            padding_mode="replicate",
            sw_device=self.device,
            device=self.stitch_device,
        )

    def _autocast(self):
        dtype = _DTYPES[self.precision]
        if dtype is None:
            return without_tf32()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def slab_slices(self, plane: tuple[int, int]) -> int:
        """Slices per slab, so that a slab's logits, and its input (each slice with its context slices, for each
        modality: ``in_channels`` values a voxel, copied once as it is stacked), stay near ``slab_voxels`` values: a
        model of 4 modalities with 2 context slices each side takes 20 input channels, and slabs sized by its 2
        classes alone held 10 input values for each logit (1.3 GB for a 240×240×155 case)."""
        per_voxel = max(self.n_classes, int(self.package.config["architecture"]["in_channels"]), 1)
        return max(1, self.slab_voxels // (plane[0] * plane[1] * per_voxel))

    def slices_to_label(self, image_shape: tuple[int, ...]) -> int:
        """How many 2D slices :meth:`predict` evaluates for a model-space image of this shape (for progress)."""
        return sum(int(image_shape[1 + axis]) for axis in self.slice_axes)

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """Label a model-space image ``(C, X, Y, Z)``; returns class indices ``(X, Y, Z)`` on the CPU (uint8, or int32
        above 256 classes): class k is the package's k-th smallest label value (``package.label_map`` maps them)."""
        image = torch.as_tensor(image).float()
        channels = int(self.package.config["architecture"]["in_channels"]) // (2 * self.context + 1)
        if image.ndim != 4 or image.shape[0] != channels:  # a caller's slip: torch's convolution error before
            raise InputError(f"a model-space image of shape {tuple(image.shape)}; model {self.package.name} takes "
                             f"({channels}, X, Y, Z)")
        if len(self.slice_axes) == 1:
            return self._along(image, self.slice_axis, progress, probabilities=False)
        probs = torch.zeros((self.n_classes, *image.shape[1:]), dtype=torch.float32)
        for axis in self.slice_axes:
            probs += self._along(image, axis, progress, probabilities=True)
        return argmax_labels(probs)

    def _along(self, image: torch.Tensor, axis: int, progress, probabilities: bool) -> torch.Tensor:
        """Slab by slab along ``axis``: labels ``(X, Y, Z)`` (uint8; int32 above 256 classes), or softmax
        ``(K, X, Y, Z)`` (float32, CPU)."""
        # (C, A, B, S): a view; each slab is made contiguous on its own (a whole-volume copy here, kept beside the
        # caller's image, cost a second full volume for slices across a non-last or permuted axis)
        volume = torch.movedim(image, 1 + axis, -1)
        plane = tuple(volume.shape[1:3])
        depth = volume.shape[-1]
        step = self.slab_slices(plane)
        if probabilities:
            out = torch.empty((self.n_classes, *plane, depth), dtype=torch.float32)
        else:
            # the type argmax_labels gives: uint8 up to 256 classes (label values above 255 would wrap)
            out = torch.empty((*plane, depth), dtype=torch.uint8 if self.n_classes <= 256 else torch.int32)
        # a slab's tiles (each plane's, for each flip) go through the network in passes of batch_size: progress is
        # told the slices of each pass as it ends, not the slab's at its end (one slab held a 30-slice volume whole,
        # and its bar stood at 0 until it jumped to 30)
        tiles_a_slice = self._tiles_a_plane(plane) * (1 + len(self.flips))
        for start in range(0, depth, step):
            stopping.check()  # a Ctrl-C or SIGTERM whose exception a callback swallowed
            stop = min(depth, start + step)
            slab = context_stack(volume, start, stop, self.context).contiguous()[None]
            told = _SlabProgress(progress, stop - start, tiles_a_slice)
            self.window_net.on_tiles = told.tiles if progress is not None else None
            try:
                out[..., start:stop] = self._label_slab(slab, axis, probabilities)
            finally:
                self.window_net.on_tiles = None
            told.finish()
        if probabilities:
            return torch.movedim(out, -1, 1 + axis)
        return torch.movedim(out, -1, axis)

    def _tiles_a_plane(self, plane: tuple[int, int]) -> int:
        """The tiles the sliding window takes of one plane (MONAI's count: a plane smaller than the tile is one)."""
        count = 1
        for size, roi in zip(plane, self.roi_size):
            if size > roi:
                step = max(1, int(roi * (1 - self.overlap)))
                count *= math.ceil((size - roi) / step) + 1
        return count

    def _label_slab(self, slab: torch.Tensor, axis: int, probabilities: bool) -> torch.Tensor:
        """One slab's labels (or softmax) on the CPU, from the slab on the CPU. Out of GPU memory (a GPU shared with
        other jobs), the slab is tried again with less on the GPU (:meth:`_back_off`); what was given up is kept for
        the volumes that follow (the sidecar records it)."""
        while True:
            self.window_net.ran_out = False
            try:
                on_device = slab.to(self.stitch_device)
                with self._autocast():
                    if probabilities:
                        return self._slab_probs(self.inferer, on_device, axis).cpu()
                    if self.flips:
                        return argmax_labels(self._slab_probs(self.inferer, on_device, axis)).cpu()
                    return argmax_labels(self.inferer(on_device, self.window_net)[0]).cpu()
            except Exception as error:  # anything else is raised again at once
                if not out_of_memory(error):
                    raise
            # out of the handler first: the error's traceback holds the failed pass's tensors
            on_device = None
            self._back_off()

    def _back_off(self) -> None:
        """After running out of GPU memory: halve the tiles per forward pass when the network ran out; when the
        stitching ran out (the slab, its blended logits and weights, on the device until then), hold those in CPU
        memory instead; with neither left to give up, raise :class:`DeviceError`."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # the failed pass's blocks back to the driver, for other processes too
        elif self.device.type == "mps":
            torch.mps.empty_cache()
        # the pass that failed, when the network ran out (the slab may have had fewer tiles than the batch allows);
        # else the batch: the latest pass may be an earlier slab's last, smaller one
        ran_out = self.window_net.ran_out
        tried = min(self.batch_size, self.window_net.last_batch or self.batch_size) if ran_out else self.batch_size
        stitching_on_device = self.stitch_device.type != "cpu"
        if stitching_on_device and (not ran_out or tried <= 1):
            where = "with one tile per forward pass" if ran_out else "outside the network"
            log.warning("%s: out of GPU memory %s; going on with each slab held in CPU memory (only its tiles on "
                        "the GPU)", self.device, where)
            self.stitch_device = torch.device("cpu")
        elif tried <= 1:
            raise DeviceError(f"{self.device}: out of GPU memory even with one {'×'.join(map(str, self.roi_size))} "
                              f"tile per forward pass{gpu_free_text(self.device)}; free GPU memory (other "
                              f"processes may hold it), or run with {setting('device', 'cpu')}") from None
        else:
            fewer = max(1, tried // 2)
            log.warning("%s: out of GPU memory with %d tiles per forward pass; going on with %d (%s)",
                        self.device, tried, fewer,
                        self.batch_note or f"{self.batch_setting or setting('batch_size', ANY)} sets it")
            self.batch_size = fewer
        self.inferer = self._inferer()

    def _slab_probs(self, inferer: SlidingWindowInferer, slab: torch.Tensor, axis: int) -> torch.Tensor:
        """Softmax of one slab ``(K, A, B, S)``, averaged over the flip TTA when the package asks for it."""
        probs = torch.softmax(inferer(slab, self.window_net)[0].float(), dim=0)
        for flip in self.flips:
            dim = self._slab_dim(flip, axis)
            flipped = inferer(self._flip_input(slab, dim), self.window_net)[0].float()
            probs += torch.flip(torch.softmax(flipped, dim=0), dims=(dim + 1,))
        if self.flips:
            probs /= len(self.flips) + 1
        return probs

    def _flip_input(self, slab: torch.Tensor, dim: int) -> torch.Tensor:
        """``slab`` (1, C*(2k+1), A, B, S) as the stack of the volume flipped along slab dim ``dim``.

        Flipping along the slicing axis (dim 2) also reverses each slice's context channels (the slice
        below becomes the slice above); without context a 2D network would see the same slices, so that
        flip would change nothing.
        """
        flipped = torch.flip(slab, dims=(dim + 2,))
        if dim == 2 and self.context:
            n, channels, *rest = flipped.shape
            window = 2 * self.context + 1
            flipped = flipped.reshape(n, channels // window, window, *rest).flip(2).reshape(n, channels, *rest)
        return flipped

    def _slab_dim(self, axis: int, slice_axis: int) -> int:
        """Where model-space volume axis ``axis`` lies in the (A, B, S) layout of slabs cut along ``slice_axis``."""
        order = [a for a in range(3) if a != slice_axis] + [slice_axis]
        return order.index(axis)
