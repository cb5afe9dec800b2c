"""What a model package records of its training and what its folder holds of it: the settings its weights were
trained with (``training.trained_with``, compared as inference applies them) and a training run beside the package
that has not finished (``medseg train``'s checkpoint)."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CHECKPOINT_DIR",
    "recorded_trained_with",
    "swapped_names",
    "trained_with",
    "unfinished_text",
    "unfinished_training",
]


CHECKPOINT_DIR = ".checkpoint"  # `medseg train`'s resumable state, beside the package it writes


def trained_with(config: dict) -> dict:
    """The settings of ``config`` its weights are trained for (labels, preprocessing, slicing, context slices, and the
    order of a multi-modal package's modalities): what
    ``medseg train`` records in ``training.trained_with``, so that a hand edit of them is told on loading."""
    inference = config.get("inference", {})
    # a multi-modal package's channel order: names swapped in model.json would have its users stack them otherwise
    modalities = {"modalities": list(config["modalities"])} if config.get("modalities") else {}
    return {"labels": config.get("labels"), "preprocessing": config.get("preprocessing"),
            "slice_axis": inference.get("slice_axis"), "context_slices": inference.get("context_slices", 0),
            **modalities}


def recorded_trained_with(config: dict) -> dict | None:
    """What a package's ``training.trained_with`` records (:func:`trained_with` when it was written), if anything."""
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    recorded = training.get("trained_with")
    return recorded if isinstance(recorded, dict) else None


def _as_applied(key: str, value):
    """A ``trained_with`` entry as inference applies it, so that writing out a default (``"nonzero": false``,
    ``"orientation": null``, ``context_slices`` 0) or one axis as a list (``[1]`` for ``1``) is not told as an edit,
    nor the flip TTA's axes in another order (``[1, 0]`` for ``[0, 1]``: one set of flips, applied in sorted order)."""
    if key == "flip_tta" and isinstance(value, list) and all(type(axis) is int for axis in value):
        return sorted(set(value))
    if key == "slice_axis":
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if key == "context_slices":
        return 0 if value is None else value
    if key != "preprocessing" or not isinstance(value, dict):
        return value
    applied = {"orientation": None, "spacing_mm": None, **value}
    intensity = applied.get("intensity")
    if isinstance(intensity, dict) and intensity.get("kind") == "zscore":
        applied["intensity"] = {"nonzero": False, **intensity}
    return applied


def swapped_names(trained: dict, now: dict) -> list[str]:
    """The labels of ``now`` (value → name) that carry the name another label had in ``trained``: names swapped, or
    one taken from another label ("background" given to label 1), which makes the weights' labels read as others.
    A label renamed to a new name is not among them."""
    trained = {str(value): str(name) for value, name in trained.items()}
    return [str(value) for value, name in now.items()
            if str(name) != trained.get(str(value)) and any(str(name) == old and other != str(value)
                                                            for other, old in trained.items())]


def swapped_modalities(trained, now) -> bool:
    """Whether ``now`` (a package's ``modalities``) gives a channel the name another channel was trained with, or
    another number of them, or none: the weights take the channels in their trained order. New names (``T1w`` for
    ``T1``) are a rename."""
    if not isinstance(trained, list) or trained == now:
        return False
    if not isinstance(now, list) or len(now) != len(trained):
        return True
    return any(name != trained[index] and name in trained for index, name in enumerate(now))


def unfinished_training(folder: Path | str) -> tuple[int, int] | None:
    """``(epochs done, epochs planned)`` of a training run in ``folder`` that has not finished: its checkpoint is
    short of the epochs last planned for it, or has them all but the run stopped before writing its package. None
    without a checkpoint, for a finished run, or for a checkpoint from before the plan was recorded. A finished run
    keeps its checkpoint beside its package (for ``--resume`` with more epochs), so a checkpoint alone says
    nothing."""
    from medseg.jsonfile import CHECKPOINT_RECORD_BYTES, read_json_object

    try:  # as medseg.checkpoint reads it (which imports this module)
        state = read_json_object(Path(folder) / CHECKPOINT_DIR / "last.json", CHECKPOINT_RECORD_BYTES,
                                 "a checkpoint record")
        epoch, planned = int(state["epoch"]), state.get("epochs_planned") or [None]
        planned = None if planned[-1] is None else int(planned[-1])
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    if planned is None:
        return None
    return (epoch, planned) if epoch < planned or state.get("package_pending") is True else None


def unfinished_text(unfinished: tuple[int, int]) -> str:
    """How :func:`unfinished_training`'s run is described: where it stopped."""
    epoch, planned = unfinished
    if epoch >= planned:
        done = "its one epoch" if planned == 1 else f"all {planned} epochs"
        return f"{done} done, stopped before it wrote its package"
    return f"checkpoint after epoch {epoch} of {planned}"
