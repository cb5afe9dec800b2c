"""A loaded and checked model package (:class:`ModelPackage`): its config's sections and labels, its weights checked
against the SHA-256 its config records and against its architecture, and its network built from them. Loading and
saving packages is :mod:`medseg.package`'s, where this class is also imported from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from medseg.errors import ModelPackageError
from medseg.io.atomic import sha256_of
from medseg.io.files import os_reason
from medseg.label_map import LabelMap, label_map
from medseg.package_config import CONFIG_NAME
from medseg.package_training import _as_applied
from medseg.package_weights import (
    _COUNTERS,
    _DTYPE_NAMES,
    _NONFINITE_BITS,
    _file_identity,
    _held_below_length_field,
    _short_of,
    _tensor_offsets,
    state_mismatch,
)

__all__ = ["ModelPackage"]


@dataclass
class ModelPackage:
    """A loaded and checked model package (the network itself is built by :meth:`build_network`)."""

    path: Path
    config: dict
    # every tensor's type and values checked where the package was loaded (:meth:`_check_values`): building the
    # network does not check them again
    values_checked: bool = dataclass_field(default=False, repr=False, compare=False)
    # the weights file as it was when its SHA-256 was checked (device, inode, size, modification time): building the
    # network later (a cohort builds it for the first case that needs it) checks again if it was replaced meanwhile
    checked_file: tuple | None = dataclass_field(default=None, repr=False, compare=False)
    # the SHA-256 of model.json as it was read: with the weights', what a sidecar names the model by (a hand edit of
    # labels or preprocessing, which the weights' hash cannot show, changes it)
    config_sha256: str | None = dataclass_field(default=None, compare=False)

    def __repr__(self) -> str:
        """One line of what names the package, as ``medseg models`` names one: its whole config (18 KB for the
        hippocampus model, its training record included) was a notebook cell's value; ``config`` holds it."""
        config = self.config if isinstance(self.config, dict) else {}
        try:
            labels = f"labels={self.labels!r}, "
        except (AttributeError, KeyError, TypeError, ValueError):  # a config the checks have not passed
            labels = ""
        digest = config.get("weights", {}).get("sha256") if isinstance(config.get("weights"), dict) else None
        weights = f"sha256='{digest[:12]}…', " if isinstance(digest, str) else ""
        return (f"ModelPackage(name={config.get('name')!r}, version={config.get('version')!r}, {labels}{weights}"
                f"path={str(self.path)!r})")

    @property
    def name(self) -> str:
        """The model's name (``model.json``'s ``name``)."""
        return self.config["name"]

    @property
    def labels(self) -> dict[int, str]:
        """Label value → name, background included, by value."""
        return {int(k): v for k, v in sorted(self.config["labels"].items(), key=lambda kv: int(kv[0]))}

    @property
    def label_map(self) -> LabelMap:
        """Output class ↔ label value: class k is the k-th smallest declared value (the identity for labels
        0..N-1)."""
        return label_map(self.config["labels"])

    @property
    def label_codes(self) -> dict[int, dict]:
        """Label value → its DICOM SEG codes (``category``, ``type``, optional ``modifier``), for the labels that
        declare them."""
        return {int(k): v for k, v in self.config.get("label_codes", {}).items()}

    @property
    def modalities(self) -> list[str] | None:
        """The input modalities the model takes, in channel order (``model.json``'s ``modalities``); None for a
        model of one image per case (every package made before modalities could be declared)."""
        modalities = self.config.get("modalities")
        return list(modalities) if modalities is not None else None

    @property
    def n_modalities(self) -> int:
        """How many images (modalities) a case gives the model: 1 unless ``modalities`` declares more."""
        return len(self.config.get("modalities") or [None])

    @property
    def weights_path(self) -> Path:
        """The safetensors file of the weights."""
        return self.path / self.config["weights"]["file"]

    @property
    def sha256(self) -> str:
        """The weights file's SHA-256 as ``model.json`` records it (checked on loading unless asked not to)."""
        return self.config["weights"]["sha256"]

    @property
    def preprocessing(self) -> dict:
        """The ``preprocessing`` section: orientation, ``spacing_mm``, intensity normalisation."""
        return self.config["preprocessing"]

    @property
    def inference(self) -> dict:
        """The ``inference`` section, with the defaults of the fields it leaves out."""
        defaults = {"overlap": 0.25, "blend": "gaussian", "context_slices": 0, "flip_tta": []}
        return {**defaults, **self.config["inference"]}

    @property
    def report_ct_window(self) -> str | None:
        """The CT window the QA report draws this model's cases in where it is given none (``report.ct_window``:
        one of :data:`~medseg.report.overlay_image.CT_WINDOWS_HU`), or None."""
        return (self.config.get("report") or {}).get("ct_window")

    @property
    def settings_sha256(self) -> str:
        """The SHA-256 of what of ``model.json`` decides its segmentations, as inference applies it: architecture,
        labels (values and names), preprocessing and inference settings; not its name, version, description, label
        codes, training record or weights entry (the weights' hash is recorded apart). Cases made before and after
        new label codes or an edited training record carry the same one."""
        inference = {**self.inference, **{key: _as_applied(key, self.inference[key])
                                          for key in ("slice_axis", "flip_tta")}}
        applied = {"architecture": self.config["architecture"], "labels": self.config["labels"],
                   "preprocessing": _as_applied("preprocessing", self.preprocessing), "inference": inference}
        if self.modalities is not None:  # declared: the channel order decides the segmentation (none: as before)
            applied["modalities"] = self.modalities
        return hashlib.sha256(json.dumps(applied, sort_keys=True).encode()).hexdigest()

    def check_weights(self) -> None:
        """Refuse weights that are not the SHA-256 ``model.json`` records, or that do not fit its architecture
        (:meth:`check_weights_fit`)."""
        try:
            before = _file_identity(self.weights_path)
            actual = sha256_of(self.weights_path)
        except OSError as error:
            raise ModelPackageError(f"{self.weights_path}: cannot read ({os_reason(error)})") from error
        if actual != self.sha256:
            held = _held_below_length_field(self.weights_path)
            if held is not None:  # no header length to go by: as cut short, not as a mismatch
                what = "empty (0 bytes)" if held == 0 else (
                    f"cut short: {held} byte{'' if held == 1 else 's'}, fewer than the 8 of the header length a "
                    "safetensors file starts with")
                raise ModelPackageError(f"{self.weights_path}: {what} (an interrupted copy?); copy the package again")
            short = _short_of(self.weights_path)
            if short is not None:  # scp writes in place: a copy cut off leaves the first part of the file
                declared = f"the {short[1]:,}" if short[2] else f"at least the {short[1]:,}"
                raise ModelPackageError(f"{self.weights_path}: cut short: {short[0]:,} bytes of {declared} its header "
                                        "declares (an interrupted copy?); copy the package again")
            raise ModelPackageError(f"{self.weights_path}: SHA-256 {actual[:12]}… does not match {self.sha256[:12]}… "
                                    f"recorded in {CONFIG_NAME}; the file is corrupt or was replaced")
        self.check_weights_fit()
        self.checked_file = before

    def check_weights_fit(self) -> None:
        """Refuse a weights file whose tensors (names and shapes, read from its header) do not fit the architecture
        in ``model.json`` (a width or depth edited there after training), or hold what no trained network holds
        (:meth:`_check_values`). Checked where the package is loaded, without torch, so that a workflow refuses it
        while planning, not in every job."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.weights_path), framework="numpy") as weights:  # "pt" imports torch
                found = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}
                self._check_shapes(found)
                self._check_values(weights)
        except ModelPackageError:
            raise
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelPackageError(f"{self.weights_path}: unreadable safetensors file ({error})") from error

    def _check_values(self, weights) -> None:
        """Refuse tensors that are not floating point or hold NaN or infinite values, as :meth:`build_network`
        does, from an open numpy ``safe_open``; bf16 and float8 tensors, which numpy cannot hold, by their bit
        patterns. ``medseg models`` then says "checked" only of weights that ``medseg infer`` takes, and a workflow
        refuses them while planning."""
        import numpy as np

        offsets, unchecked = None, 0
        for key in weights.keys():
            if key.endswith(_COUNTERS):
                continue
            dtype = weights.get_slice(key).get_dtype()
            if not dtype.startswith(("F", "BF")):  # F16 … F64, the float8, float6 and float4 types, BF16
                raise ModelPackageError(self._not_float(key, _DTYPE_NAMES.get(dtype, dtype.lower())))
            if dtype in ("F16", "F32", "F64"):
                values = weights.get_tensor(key)
                if not np.isfinite(values).all():
                    raise ModelPackageError(self._not_finite(key, int((~np.isfinite(values)).sum())))
            elif dtype in _NONFINITE_BITS:  # read as raw bits (numpy has no such types)
                offsets = _tensor_offsets(self.weights_path) if offsets is None else offsets
                size, mask, nonfinite = _NONFINITE_BITS[dtype]
                start, end = offsets[key]
                bits = np.fromfile(self.weights_path, dtype="<u2" if size == 2 else "u1", count=(end - start) // size,
                                   offset=start)
                bad = int(((bits & mask) == nonfinite).sum())
                if bad:
                    raise ModelPackageError(self._not_finite(key, bad))
            else:  # float6, float4: no NaN or infinity to find by their bits here; torch checks them
                unchecked += 1
        self.values_checked = not unchecked

    def _not_float(self, key: str, dtype: str) -> str:
        return (f"{self.weights_path}: tensor {key} holds {dtype}, not floating-point numbers: these are not trained "
                "weights")

    def _not_finite(self, key: str, bad: int) -> str:
        return (f"{self.weights_path}: tensor {key} holds {bad} NaN or infinite value{'' if bad == 1 else 's'}: the "
                "weights are damaged (a diverged training run writes such weights)")

    def _check_shapes(self, found: dict[str, tuple]) -> None:
        from medseg.network_shapes import state_shapes

        expected = state_shapes(self.config["architecture"])  # without torch: a workflow's planning calls this
        # batch norm's step counters are not weights: torch fills in a missing one (weights exported without them)
        mismatch = state_mismatch({k: v for k, v in expected.items() if not k.endswith(_COUNTERS)},
                                  {k: v for k, v in found.items() if not k.endswith(_COUNTERS)})
        if mismatch:
            raise ModelPackageError(
                f"{self.weights_path}: weights do not match the architecture in {CONFIG_NAME} ({mismatch})")

    def build_network(self, device: str | None = None):
        """The U-Net with this package's weights, in eval mode, on ``device``; torch's random generator is left as it
        was."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from medseg.network import UNet2D, UNetConfig

        arch = UNetConfig(**{k: v for k, v in self.config["architecture"].items() if k != "type"})
        for attempt in range(3):
            try:
                state = load_file(str(self.weights_path), device="cpu")
            except (SafetensorError, OSError, ValueError) as error:
                raise ModelPackageError(f"{self.weights_path}: unreadable safetensors file ({error})") from error
            # looked at once the tensors are read: a file replaced or rewritten since its hash was checked (a
            # training run finishing into the folder), before or while they were read, is checked again and read
            # again, so that the sidecar's hash is that of the weights used
            if self.checked_file is None or _file_identity(self.weights_path) == self.checked_file:
                break
            if attempt == 2:
                raise ModelPackageError(f"{self.weights_path}: changed while it was read, three times; load the "
                                        "package once nothing writes to it")
            self.values_checked = False
            try:
                self.check_weights()
            except ModelPackageError as error:  # damage, or more likely a new package placed since it was loaded
                raise ModelPackageError(f"{error}; it changed since {self.path} was loaded (a new package written "
                                        "into the folder meanwhile?): run again to load the package as it is "
                                        "now") from error
        self._check_shapes({k: tuple(v.shape) for k, v in state.items()})
        for key, tensor in ([] if self.values_checked else state.items()):
            if key.endswith(_COUNTERS):
                continue
            if not tensor.is_floating_point():
                raise ModelPackageError(self._not_float(key, str(tensor.dtype)[6:]))
            finite = torch.isfinite(tensor.float())  # float8 types have no isfinite of their own
            if not bool(finite.all()):
                raise ModelPackageError(self._not_finite(key, int((~finite).sum())))
        with torch.random.fork_rng(devices=[]):  # its initial weights, replaced below, leave the caller's draws be
            net = UNet2D(arch)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as error:  # a step counter of another shape, say
            detail = str(error).strip().splitlines()[-1].strip() if str(error).strip() else type(error).__name__
            raise ModelPackageError(
                f"{self.weights_path}: weights do not match the architecture in {CONFIG_NAME} ({detail})"
            ) from error
        net.eval()
        if device is not None:
            net.to(device)
        return net
