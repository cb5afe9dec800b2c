"""medseg: batch segmentation of medical volumes with slice-wise 2D U-Nets on MONAI.

The entry points a script or notebook needs are names of this package, each imported from its module when first
used (``import medseg`` itself imports neither torch nor numpy): ``Segmenter`` (a model loaded once), ``Volume`` (an
array and its voxel-to-RAS+ affine in mm), ``read_image``, ``segment_volume`` (labels in memory), ``segment_case``
(the files ``medseg infer`` writes), ``evaluate_volumes`` and ``score_prediction`` (the metrics record),
``score_folder``, ``build_report``, ``load_package``, ``set_threads``, ``MedsegError``, the root of every error
medseg raises, and ``MedsegWarning``, the category of its warnings. Training is :func:`medseg.train.train` with
:mod:`medseg.train_config` and :mod:`medseg.training_cases`.
"""

from __future__ import annotations

import importlib
import logging

# typing.TYPE_CHECKING, without importing typing (6 ms of `import medseg`): mypy and pyright take a name TYPE_CHECKING
# as true
TYPE_CHECKING = False

__version__ = "0.1.0"

# name -> the module it is defined in: imported on first use (PEP 562), so that `import medseg` stays light
_ENTRY_POINTS = {
    "MedsegError": "medseg.errors",
    "MedsegWarning": "medseg.errors",
    "Segmenter": "medseg.inference",
    "Volume": "medseg.volume",
    "build_report": "medseg.report.build",
    "evaluate_volumes": "medseg.metrics",
    "load_package": "medseg.package",
    "read_image": "medseg.io.images",
    "score_folder": "medseg.folder_scoring",
    "score_prediction": "medseg.scoring",
    "segment_case": "medseg.segment",
    "segment_volume": "medseg.segment",
    "set_threads": "medseg.resources",
}

__all__ = ["__version__", "MedsegError", "MedsegWarning", "Segmenter", "Volume", "build_report", "evaluate_volumes",
           "load_package", "read_image", "score_folder", "score_prediction", "segment_case", "segment_volume",
           "set_threads"]

if TYPE_CHECKING:  # for mypy and pyright: the names as their modules define them
    from medseg.errors import MedsegError, MedsegWarning
    from medseg.folder_scoring import score_folder
    from medseg.inference import Segmenter
    from medseg.io.images import read_image
    from medseg.metrics import evaluate_volumes
    from medseg.package import load_package
    from medseg.report.build import build_report
    from medseg.resources import set_threads
    from medseg.scoring import score_prediction
    from medseg.segment import segment_case, segment_volume
    from medseg.volume import Volume


if not TYPE_CHECKING:  # hidden from mypy and pyright: a module's __getattr__ made any name pass their checks
    # (medseg.segment_volumes, a typo, was Any), where the block above gives them the real ones
    def __getattr__(name: str):
        module = _ENTRY_POINTS.get(name)
        if module is None:
            raise AttributeError(f"module 'medseg' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # looked up once
        return value

    def __dir__() -> list[str]:
        """The public names: ``__all__`` and the submodules imported so far, not the lookup's own machinery
        (``TYPE_CHECKING``, ``importlib``, ``logging``), which ``dir(medseg)`` listed."""
        submodules = [name for name, value in globals().items()
                      if type(value) is type(importlib) and value.__name__ == f"{__name__}.{name}"]
        return sorted({*__all__, *submodules})


# a library's loggers write nothing until the program configures logging: without a handler of its own, Python's
# last-resort handler wrote each warning to stderr of a notebook or pipeline that had not asked for it
logging.getLogger(__name__).addHandler(logging.NullHandler())
