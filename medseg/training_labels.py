"""The labels of the training cases: the label values their files hold (:func:`label_values`, for a default config),
and the checks on which labels the training and validation cases hold (:func:`check_label_presence`): training
cases without any foreground refused, blank label images among others named, a declared label that no training or
validation case holds warned about, with advice that fits where it was declared (:class:`LabelsFrom`)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from medseg.caller_warnings import warning
from medseg.errors import TrainingError
from medseg.label_map import label_map
from medseg.numbers import IMAGE_LIKE_VALUES, image_among_labels, odd_values
from medseg.settings_named import ANY, has_option, setting
from medseg.train_config import validation_without_foreground

if TYPE_CHECKING:
    from medseg.training_pairing import TrainCase

__all__ = ["LabelsFrom", "check_label_presence", "check_training_foreground", "label_values"]

# the training cases' logger, whichever of their modules warns: their warnings are told as
# "WARNING medseg.training_cases: ..."
log = logging.getLogger("medseg.training_cases")

def label_values(cases: list[TrainCase]) -> dict[int, Path]:
    """The label values found in the cases' label files, each with the first file holding it, in value order (for
    :func:`~medseg.train_config.default_config`). A file that cannot be read is passed over: the checks of every
    case name it, with the others' problems (stopping here named the first alone)."""
    from medseg.errors import ImageReadError, InputError
    from medseg.io.label_images import header_scaling_note
    from medseg.io.nifti import read_nifti

    found: dict[int, Path] = {}
    for case in cases:
        try:
            with _reader_notes_left_to_the_cases():
                label = read_nifti(case.label_path, hash_input=False, labels=True)
        except (ImageReadError, InputError):
            continue
        values = np.unique(label.array)
        if not np.all(values == np.round(values)) or values.min() < 0:
            hint = image_among_labels() if len(values) > IMAGE_LIKE_VALUES else ""
            raise TrainingError(f"{case.label_path}: label values must be whole non-negative numbers, found "
                                f"{odd_values(values, negative=True)}{hint}{header_scaling_note(label)}")
        for value in values:
            found.setdefault(int(value), case.label_path)
    return dict(sorted(found.items()))


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextlib.contextmanager
def _reader_notes_left_to_the_cases():
    """The image readers' warnings about a file (its header's sform and qform disagreeing, its orientation …) held
    back while :func:`label_values` reads the label files for their values only: reading the cases reads every one of
    them again and tells them then (they were told twice, one after the other)."""
    muted = _ErrorsOnly()
    readers = [logging.getLogger(name) for name in ("medseg.io.nifti", "medseg.io.itk_image")]
    for reader in readers:
        reader.addFilter(muted)
    try:
        yield
    finally:
        for reader in readers:
            reader.removeFilter(muted)


def check_training_foreground(train_cases: list[TrainCase]) -> None:
    """Refuse training cases (loaded) none of whose labels holds any foreground: there is nothing to learn."""
    if not train_cases or any(case.label is None or bool(case.label.any()) for case in train_cases):
        return
    whose = ("that of the one training case is" if len(train_cases) == 1 else
             f"those of all {len(train_cases)} training cases are")
    raise TrainingError(f"{train_cases[0].label_path.parent}: no training label image holds any foreground "
                        f"({whose} background only); there is nothing to learn")


def _warn_blank_labels(train_cases: list[TrainCase], val_cases: list[TrainCase]) -> None:
    """Warn, naming the files, about a few label images (at most a tenth) with background only among others that
    hold foreground: a blank export (a common slip) trains as a case without the structure, and validates as one.
    More of them are a data set's negative cases: told at info level."""
    blank = [case for case in [*train_cases, *val_cases] if case.label is not None and not bool(case.label.any())]
    total = len(train_cases) + len(val_cases)
    if not blank or len(blank) == total:
        return  # none, or all (refused for training cases; said for validation cases)
    if len(blank) > max(1, total // 10):  # many: a data set with negative cases (lesions), not a slip
        log.info("%d of %d label images hold background only (cases without the structure)", len(blank), total)
        return
    shown = ", ".join(str(case.label_path) for case in blank[:3]) + (f" and {len(blank) - 3} more"
                                                                    if len(blank) > 3 else "")
    training = {id(case) for case in train_cases}
    roles = {"training" if id(case) in training else "validation" for case in blank}
    warning(log, "%s: %s background only (no label value above 0): %s as %s without the structure; a blank "
                "export?", shown, "holds" if len(blank) == 1 else f"{len(blank)} label images hold",
                "trained on and scored" if len(roles) == 2 else
                ("trained on" if "training" in roles else "scored"), "a case" if len(blank) == 1 else "cases")


class LabelsFrom(NamedTuple):
    """Where a run's declared labels come from, for the advice on those no training case holds: ``kind``
    ``"config"`` (``path``: the file given with ``-c``; None for a config made in code), ``"dataset.json"``
    (``path``: the dataset.json beside the folders, whose values declare labels no file may hold) or ``"files"``
    (the values the label files hold, without a config or a dataset.json naming them)."""

    kind: str = "config"
    path: Path | None = None


def _untrained_advice(untrained: list[int], in_training: set[int], labels_from: LabelsFrom) -> str:
    """What to do about declared labels no training case holds, as fits where they were declared: gaps a config
    declared (below a value the files hold) need not be, since labels may skip values; a dataset.json's are left out
    by a config of their own; labels found in the files are held by validation cases only."""
    it = "it" if len(untrained) == 1 else "them"
    if labels_from.kind == "files":
        split = f"{setting('seed', ANY, python='training.seed')} or {setting('fold', ANY, python='training.fold')}"
        return (f" (only validation cases hold {it}: another split, with {split}, may put a case that holds "
                f"{it} among the training cases)")
    if labels_from.kind == "dataset.json":
        where = labels_from.path or "the dataset.json"
        if has_option("config"):
            return (f" ({where} declares {it}: to spend no output class on {it}, train with {setting('config', ANY)} "
                    f"and a config whose labels leave {it} out)")
        return (f" ({where} declares {it}: to spend no output class on {it}, train with a config whose labels leave "
                f"{it} out (train's config argument))")
    if not all(value < max(in_training, default=0) for value in untrained):
        return ""  # above every value the files hold: a structure these cases lack, not a gap
    where = labels_from.path or "the config"
    return (f" (declared to keep the files' values? no need: a model's labels may skip values, so leave {it} out of "
            f"{where} and no output class is spent on {it})")


def check_label_presence(config: dict, train_cases: list[TrainCase], val_cases: list[TrainCase],
                         labels_from: LabelsFrom | None = None) -> tuple[list[int], list[int]]:
    """Refuse training cases without any foreground; warn about a declared label that no training case holds (the
    network cannot learn it; with advice that fits ``labels_from``, a config by default) or no validation case holds
    (its Dice only counts false positives; all of them: once, as validation then chooses no epoch). Returns both
    lists of labels: (no training case, no validation case)."""
    values = label_map(config["labels"])

    def present(cases):  # the label values the cases hold (their labels hold class indices)
        found: set[int] = set()
        for case in cases:
            if case.label is not None:
                found.update(values.value_of(v) for v in torch.unique(case.label).tolist())
        return found

    declared = {int(k): str(v) for k, v in config["labels"].items() if int(k) != 0}
    check_training_foreground(train_cases)
    _warn_blank_labels(train_cases, val_cases)
    in_training = present(train_cases)
    untrained = [value for value in declared if value not in in_training]
    advice = _untrained_advice(untrained, in_training, labels_from or LabelsFrom()) if untrained else ""
    if len(untrained) == 1:
        warning(log, "label %d %r appears in no training case: the network cannot learn it%s", untrained[0],
                    declared[untrained[0]], advice)
    elif untrained:  # one line for all: labels 1, 3, 7 declared as 0..7 gave one line per gap
        warning(log, "labels %s are in no training case: the network cannot learn them%s", _named(untrained, declared),
                    advice)
    if not val_cases:
        return untrained, []
    in_validation = present(val_cases)
    absent = [value for value in declared if value not in in_validation]
    if validation_without_foreground(config["labels"], len(val_cases), absent):
        warning(log, "no validation case holds a foreground label (%d case%s): their Dice can only count false "
                    "positives, so it chooses no epoch; the package holds the last epoch's weights", len(val_cases),
                    "" if len(val_cases) == 1 else "s")
        return untrained, absent
    trained = [value for value in absent if value not in untrained]  # the others: named in the line above
    if len(trained) == 1:
        warning(log, "label %d %r appears in no validation case: its Dice counts only false positives (0 in a case "
                    "where it is predicted, n/a where not)", trained[0], declared[trained[0]])
    elif trained:
        warning(log, "labels %s are in training but in no validation case: their Dice counts only false positives (0 "
                    "in a case where one is predicted, n/a where not)", _named(trained, declared))
    return untrained, absent


def _named(values: list[int], names: dict[int, str]) -> str:
    """``2 unused_2, 4 unused_4``: labels as the model card names them."""
    return ", ".join(f"{value} {names[value]}" for value in values)
