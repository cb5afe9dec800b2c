"""What a results folder holds about one case (:class:`CaseResult`) and each of its labels (:class:`LabelResult`),
with the paths its records name as they exist now (:func:`resolve_path`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medseg.io.files import plain_name
from medseg.report.result_records import METRIC_FIELDS, _number

__all__ = ["CaseResult", "LabelResult", "asked_series", "label_key", "resolve_path"]


@dataclass
class LabelResult:
    """One label of one case; ``None`` where a value is undefined or unknown."""

    value: str
    name: str
    status: str  # ok | both_empty | false_positive | empty_prediction | no_reference
    dice: float | None = None
    hd95_mm: float | None = None
    assd_mm: float | None = None
    pred_volume_ml: float | None = None
    ref_volume_ml: float | None = None
    false_positive_ml: float | None = None
    false_negative_ml: float | None = None
    # its false positives where the reference has another label, by that label's value (ml): a swap, a leak
    false_positive_in_ml: dict[str, float] = field(default_factory=dict)
    # how deep those lie past the boundary the two labels share in the reference, in voxel layers (None: they share
    # none; a record written before this was recorded has no entry)
    false_positive_in_layers: dict[str, float | None] = field(default_factory=dict)

    @property
    def named(self) -> bool:
        """Whether the name says what the label is: not the ``label_N`` of a case scored without label names."""
        return self.name != f"label_{self.value}"


def asked_series(failure: dict) -> str:
    """" (series N asked for)" for a failure record of a DICOM row (it failed before a series was read, so no
    sidecar names one); "" otherwise."""
    return f" (series {failure['series']} asked for)" if failure.get("series") else ""


@dataclass
class CaseResult:
    """What the results folder holds about one case."""

    case_id: str
    folder: Path
    results_dir: Path
    sidecar: dict | None = None
    metrics: dict | None = None
    failure: dict | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # whether the report has read its segmentation, a DICOM SEG, once: what reading it warns of (another frame of
    # reference, segments it lacks) is told at that reading, its next ones (an overlay) at info level
    segmentation_told: bool = field(default=False, repr=False, compare=False)

    @property
    def status(self) -> str:
        """``failed``, ``scored`` (has metrics) or ``no_reference`` (segmented, not scored)."""
        if self.failure is not None:
            return "failed"
        return "scored" if self.metrics is not None else "no_reference"

    @property
    def model(self) -> dict:
        return (self.sidecar or {}).get("model") or {}

    @property
    def in_training_set(self) -> bool | None:
        """Whether the input is one of the model's training images (its sidecar says, where the package lists their
        SHA-256); None when unknown. A failed case's older sidecar does not count."""
        if self.failed_before_scoring:
            return None
        value = (self.sidecar or {}).get("in_training_set")
        return value if isinstance(value, bool) else None  # another type is refused as the sidecar is read

    @property
    def labels_not_trained(self) -> set[str]:
        """The label values (as ``LabelResult.value`` has them) that no training case of the model held, as its
        sidecar records them (``labels_not_trained``): the network never learnt them, so an empty prediction of one
        is expected. Empty when the sidecar records none, or a failed case's older sidecar says it."""
        if self.failed_before_scoring:
            return set()
        values = (self.sidecar or {}).get("labels_not_trained")
        if not isinstance(values, list):
            return set()
        return {str(v) for v in values if type(v) is int}

    @property
    def failed_before_scoring(self) -> bool:
        """Failed while it was read or segmented: what its sidecar says (an older run's, if any) is not this run's."""
        return self.failure is not None and not self.failed_at_scoring

    @property
    def failed_at_scoring(self) -> bool:
        """Failed only at scoring, with a sidecar: its segmentation, and the sidecar's input record, stand (a case
        that failed earlier may keep an older run's sidecar)."""
        return self.failure is not None and self.failure.get("stage") in ("evaluate", "not_scored") and bool(
            self.sidecar)

    def named_reference(self) -> str | None:
        """The reference as the report names it: the one its scores were made against where the report takes them
        (a case not failed, or ``stale``: that run's), else the one its failure record names (none for two files
        claiming to be its metrics: the first one read was not what it was scored against, as the report shows it)."""
        scores = (self.metrics or {}) if self.failure is None or self.failure.get("stage") == "stale" else {}
        return scores.get("reference") or (self.failure or {}).get("reference")

    def labels(self) -> list[LabelResult]:
        """Per-label results: metrics when scored, else the sidecar's predicted volumes (also for a case that failed
        only at scoring: its segmentation stands, status ``not_scored``)."""
        if self.failure is not None:
            if self.failed_at_scoring:
                return self._predicted("not_scored")
            return []
        if self.metrics is not None:
            out = []
            for value, entry in sorted(self.metrics.get("labels", {}).items(), key=lambda kv: label_key(kv[0])):
                values = {key: _number(entry.get(key)) for key in METRIC_FIELDS}
                inside = entry.get("false_positive_in_ml")
                inside = {str(other): float(ml) for other, ml in inside.items() if _number(ml)} \
                    if isinstance(inside, dict) else {}
                layers = entry.get("false_positive_in_layers")
                layers = {str(other): (float(n) if _number(n) else None) for other, n in layers.items()} \
                    if isinstance(layers, dict) else {}
                out.append(LabelResult(str(value), str(entry.get("name", f"label_{value}")),
                                       str(entry.get("status", "ok")), **values, false_positive_in_ml=inside,
                                       false_positive_in_layers=layers))
            return out
        return self._predicted("no_reference")

    def _predicted(self, status: str) -> list[LabelResult]:
        """The sidecar's label names and predicted volumes."""
        sidecar = self.sidecar or {}
        names = sidecar.get("labels", {})
        volumes = sidecar.get("label_volume_ml", {})
        return [
            LabelResult(str(value), str(name), status, pred_volume_ml=_number(volumes.get(value)))
            for value, name in sorted(names.items(), key=lambda kv: label_key(kv[0]))
            if label_key(value) != 0
        ]

    def min_dice(self) -> float | None:
        values = [label.dice for label in self.labels() if label.dice is not None]
        return min(values) if values else None

    def segmentation_path(self) -> Path | None:
        """The segmentation file, if it can be found: beside the case's records, beside its sidecar (scores, or a
        failure at scoring, written into a folder of their own), or where its metrics name it."""
        candidates = []
        if self.sidecar and self.sidecar.get("segmentation"):
            name = Path(str(self.sidecar["segmentation"])).name
            candidates.append(self.folder / name)
            if "sidecar" in self.paths:
                candidates.append(self.paths["sidecar"].parent / name)
        own = f"{self.case_id}_seg.nii.gz"
        if plain_name(own):  # a record's id may name a path (../x, a crafted one): never a file outside the case's
            candidates.append(self.folder / own)  # folder; a POSIX name holding "\\" (scan\006) is a name there
        if self.metrics and self.metrics.get("prediction"):
            candidates.append(resolve_path(self.metrics["prediction"], self))
        return next((c for c in candidates if c is not None and _exists(c, file=True)), None)

    def recorded_input(self) -> str | None:
        """The input as recorded: the sidecar's, else the image a folder's scoring was given (``--images``), else
        the failure record's (unless that is the prediction it was scoring)."""
        return (self.sidecar or {}).get("input") or (self.metrics or {}).get("image") or \
            (None if self.failed_prediction else (self.failure or {}).get("input"))

    @property
    def failed_prediction(self) -> str | None:
        """The prediction a folder's scoring failed on, which its failure record gives as its ``input`` and as its
        ``prediction`` (a cohort's failure records give the image as the input)."""
        failure = self.failure or {}
        if failure.get("prediction") and failure.get("prediction") == failure.get("input"):
            return str(failure["prediction"])
        return None

    def input_path(self) -> Path | None:
        source = self.recorded_input()
        return resolve_path(source, self) if source else None

    def image_path(self) -> Path | None:
        """The image to draw and check the labels' grid against: the input as recorded, where it is found, else the
        image a folder's scoring was given (``--images``): a sidecar names its input where it was when segmented,
        which a prediction scored elsewhere (another machine, inputs sorted into ``imagesTs/``) no longer finds."""
        found = self.input_path()
        if found is None and (self.sidecar or {}).get("input") and (self.metrics or {}).get("image"):
            return resolve_path(self.metrics["image"], self)
        return found

    def input_series(self) -> str | None:
        """The DICOM series the case was segmented from, when the input is a DICOM folder: its UID, or its key
        when the UID does not single it out (the parts of a split series share one; an anonymised series has
        none). Two series may share a number, so the key alone is not enough either."""
        from medseg.io.seg_volume import recorded_series

        return recorded_series(self.sidecar or {})

    def input_label(self) -> str | None:
        """The input as a reader should see it: the path, with the DICOM series used."""
        source = self.recorded_input()
        info = (self.sidecar or {}).get("input_info") or {}
        if source and info.get("series_key"):
            from medseg.io.dicom_series import series_text

            return f"{source} ({series_text(info)})"
        if source and (self.failure or {}).get("series"):  # failed before a series was read: the one asked for
            return f"{source}{asked_series(self.failure)}"
        return source

    def reference_path(self) -> Path | None:
        """The reference the case is named with (:meth:`named_reference`), as it exists now: what its overlay draws
        and its checks read (a case failed as a duplicate drew the first metrics file's, not scored against it)."""
        source = self.named_reference()
        return resolve_path(source, self) if source else None


def resolve_path(recorded: str | None, case: CaseResult) -> Path | None:
    """A path recorded in a case's JSON, as it exists now.

    Relative paths were relative to the working folder of the run that wrote them; they are tried
    against the current folder, the results folder, its parent and the case's folder, in that order.
    """
    if not recorded:
        return None
    path = Path(str(recorded))
    if path.is_absolute():
        return path if _exists(path) else None
    for base in (Path.cwd(), case.results_dir, case.results_dir.parent, case.folder):
        if _exists(base / path):
            return base / path
    return None


def _exists(path: Path, file: bool = False) -> bool:
    """Whether ``path`` is there (a file, with ``file``); a name too long for the file system, a folder that cannot
    be searched or a NUL byte means it cannot be found, not that the report fails."""
    try:
        return path.is_file() if file else path.exists()
    except (OSError, ValueError):
        return False


def label_key(value) -> int:
    """A label value (a JSON key) as a number to sort by; anything else sorts last."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1 << 62
