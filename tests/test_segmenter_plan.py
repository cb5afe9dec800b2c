"""A segmenter to be (medseg.segmenter_plan): segment_case reads its input before the network is built."""

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import DeviceError, ImageReadError
from medseg.package import load_package
from medseg.segment import segment_case
from medseg.segmenter_plan import SegmenterPlan
from medseg.synthetic import make_phantom


def _cut_short(tmp_path):
    """A NIfTI file whose header is whole and whose voxels are cut short (an interrupted copy)."""
    whole = tmp_path / "whole.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).image, np.eye(4)), str(whole))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(whole.read_bytes()[:2000])
    return cut


def test_an_input_that_cannot_be_read_builds_no_network(tmp_path, make_package, monkeypatch):
    """Given a plan, or a model's folder, segment_case names an unreadable input without building the network (torch,
    MONAI and the weights: seconds), and writes nothing."""
    import medseg.inference

    cut = _cut_short(tmp_path)
    package = make_package()
    plan = SegmenterPlan(load_package(package))
    with pytest.raises(ImageReadError, match="truncated image data"):
        segment_case(cut, plan, out_dir=tmp_path / "out")
    assert plan.segmenter is None and plan.error is None
    monkeypatch.setattr(medseg.inference.Segmenter, "__init__", lambda *args, **kwargs: pytest.fail("network built"))
    with pytest.raises(ImageReadError, match="truncated image data"):
        segment_case(cut, package, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_the_network_is_built_once_and_a_failure_to_build_it_is_kept(make_package):
    """ready() builds the segmenter on its first call and hands the same one after; a device that cannot be had is
    raised and kept (``error``: the command tells it from an input's), and raised again without a second try."""
    package = load_package(make_package())
    built = []
    plan = SegmenterPlan(package, device="cpu", batch_size=4, on_ready=built.append)
    assert (plan.n_classes, plan.slice_axes) == (4, [2])
    segmenter = plan.ready()
    assert plan.ready() is segmenter and built == [segmenter] and segmenter.batch_size == 4
    failing = SegmenterPlan(package, device="tpu")
    with pytest.raises(DeviceError, match="expected auto, cpu, cuda, cuda:N or mps") as first:
        failing.ready()
    assert failing.error is first.value
    with pytest.raises(DeviceError) as second:
        failing.ready()
    assert second.value is first.value and failing.segmenter is None
