"""A segmenter's settings and model package, its network built on first need.

Reading an input needs only the package's config (its preprocessing, modalities, labels, classes and slicing axes);
labelling it needs the network (torch, MONAI, the weights on a device: seconds). :func:`~medseg.segment.segment_case`
reads its input first and asks :meth:`SegmenterPlan.ready` for the network only then, so that an input that cannot be
read is told without torch ever being imported, and a batch of such inputs loads no model at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medseg.inference import Segmenter
    from medseg.model_package import ModelPackage

__all__ = ["SegmenterPlan", "slice_axes"]

log = logging.getLogger(__name__)


def slice_axes(inference: dict) -> list[int]:
    """The package's slicing axes: ``slice_axis`` is one model-space axis or a list of them (a view ensemble)."""
    axis = inference["slice_axis"]
    return [int(a) for a in axis] if isinstance(axis, list) else [int(axis)]


class SegmenterPlan:
    """A :class:`~medseg.inference.Segmenter` to be: ``package`` (loaded, its weights checked) and the settings the
    segmenter takes (``device``, ``precision``, ``batch_size``, ``overlap``, ``invocation``; ``threads``: torch's CPU
    threads, :func:`~medseg.resources.set_threads`), the network built by :meth:`ready` on first call.
    ``on_ready(segmenter)`` is called once it is (the command names the model and its device then). ``error`` holds
    what building it raised (a device not there, out of memory): an error of the model, not of the input being
    segmented as it came."""

    def __init__(self, package: ModelPackage, *, threads: int | None = None,
                 on_ready: Callable[[Segmenter], None] | None = None, **settings) -> None:
        self.package = package
        self.n_classes = int(package.config["architecture"]["n_classes"])
        self.slice_axes = slice_axes(package.inference)
        self.threads = threads
        self.settings = settings
        self.on_ready = on_ready
        self.segmenter: Segmenter | None = None
        self.error: BaseException | None = None
        self.setup_s = 0.0  # seconds the network took to be ready (torch and MONAI imports included)

    def ready(self) -> Segmenter:
        """The segmenter, built on the first call (torch, MONAI, the network and its weights on the device)."""
        if self.segmenter is not None:
            return self.segmenter
        if self.error is not None:  # failed once: the same error, not a second build
            raise self.error
        clock = time.perf_counter()
        try:
            from medseg.inference import Segmenter
            from medseg.resources import set_threads

            set_threads(self.threads)  # or no more than a cgroup's CPU quota allows
            self.segmenter = Segmenter(self.package, **self.settings)
        except Exception as error:
            self.error = error
            raise
        self.setup_s = time.perf_counter() - clock
        log.debug("model %s ready in %.2f s (torch and MONAI imports included)", self.package.name, self.setup_s)
        if self.on_ready is not None:
            self.on_ready(self.segmenter)
        return self.segmenter

    def __repr__(self) -> str:
        state = "built" if self.segmenter is not None else "not built yet"
        return f"SegmenterPlan(model={self.package.name!r}, {state})"
