"""The one error root of medseg.

Every error the library raises on purpose derives from :class:`MedsegError`, and also from the builtin
that matches it, so callers can catch either. The CLI turns a MedsegError into a one-line message and
exit code 1; the two that mean the command line itself is wrong (:class:`ModelMismatchError`,
:class:`ConflictingInputsError`) are usage errors there, exit code 2. Messages name the file and the problem,
and say how to recover where that is known.
"""

from __future__ import annotations

__all__ = [
    "MedsegError",
    "InputError",
    "ImageReadError",
    "OutputExistsError",
    "OutputWriteError",
    "ModelPackageError",
    "ModelMismatchError",
    "ConflictingInputsError",
    "DeviceError",
    "GeometryError",
    "DicomError",
    "TrainingError",
    "UntrainableCasesError",
    "WorkerDiedError",
    "JobTimeLimitError",
    "JobFailedError",
    "CohortFailedError",
    "MedsegWarning",
    "first_line",
]


class MedsegError(Exception):
    """Root of every error medseg raises on purpose."""


class InputError(MedsegError, ValueError):
    """An input file or argument is not usable."""


class ImageReadError(MedsegError, OSError):
    """An image file could not be read (missing, truncated, not an image)."""


class OutputExistsError(MedsegError, FileExistsError):
    """An output exists already and overwriting was not asked for."""


class OutputWriteError(MedsegError, OSError):
    """An output could not be written (no permission, a folder in its place, disk full)."""


class ModelPackageError(MedsegError, ValueError):
    """A model package is missing, corrupt or inconsistent."""


class ModelMismatchError(InputError):
    """A model package given for a prediction is not the model that made it (its sidecar says which did)."""


class ConflictingInputsError(InputError):
    """Inputs given together that cannot be processed together: two that would write the same output, an output
    that would replace an input, or a model given as an input (a usage error at the command line)."""


class DeviceError(MedsegError, RuntimeError):
    """The requested compute device is not available."""


class GeometryError(MedsegError, ValueError):
    """Two images do not share a grid, or a volume's geometry cannot be trusted."""


class DicomError(MedsegError, ValueError):
    """A DICOM folder or file cannot be turned into one 3D volume."""


class TrainingError(MedsegError, ValueError):
    """Training data or training settings are not usable."""


class UntrainableCasesError(TrainingError):
    """Several cases cannot be trained on: ``problems`` holds each one's one-line problem, in the cases' order, and
    ``case_count`` how many cases were checked."""

    problems: tuple[str, ...] = ()
    case_count: int = 0


class CohortFailedError(MedsegError, RuntimeError):
    """More cases of a cohort failed than its ``fail_on_failed_cases`` setting lets a run succeed with."""


class WorkerDiedError(MedsegError, RuntimeError):
    """A process died (killed, out of memory, crashed) while handling a case, more than once."""


class JobTimeLimitError(MedsegError, TimeoutError):
    """A cohort job's last attempt reached its time limit before a case of its batch was finished."""


class JobFailedError(MedsegError, RuntimeError):
    """A cohort job's last attempt failed for a reason of the whole job (the model package, the device), not of the
    case, before the case was done."""


class MedsegWarning(UserWarning):
    """What medseg warns a Python caller about while it goes on (an input unlike the model's training images, nnU-Net's
    ``case_0000`` read without its ``case_0001``, a broken DICOM series passed over for another, a file left out of
    the training pairs, a prediction without a reference): a ``warnings.warn`` category a caller can filter
    (``warnings.simplefilter("error", MedsegWarning)`` turns each into an error raised where it is given, stopping the
    call: segmenting's before anything is written, as these are told before the outputs are; ``score_folder``'s of
    its pairing, as a prediction without a reference, before anything is scored, a warning of one case failing that
    case, recorded as not scored, and its others, as ``build_report``'s, once the report is written).
    Each is also logged, but where the command tells it otherwise."""


def first_line(error: BaseException) -> str:
    """An error's first line (a library's multi-line message cut to what a one-line message can hold), or its type's
    name where it has no text."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
