"""The segmentation written on its input's grid (medseg.io.nifti_write): shape, sform/qform, their codes and
units reproduced from the input's header as stored; its free text and extensions left behind."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from nifti_cases import KINDS, _affine, _oblique_image, _write

from medseg.inference import Segmenter
from medseg.package import load_package
from medseg.segment import segment_case
from medseg.synthetic import make_phantom


@pytest.mark.parametrize("kind", KINDS)
def test_output_reproduces_input_geometry_exactly(tmp_path, make_package, kind):
    phantom = make_phantom((40, 36, 12), seed=3)
    source = _write(tmp_path / f"{kind}.nii.gz", phantom.image, _affine(kind), sform_code=2, qform_code=1)
    package = load_package(make_package())
    outputs = segment_case(tmp_path / f"{kind}.nii.gz", Segmenter(package, device="cpu"), out_dir=tmp_path / "out")
    result = nib.load(str(outputs.segmentation))
    assert result.shape == source.shape
    assert result.get_data_dtype() == np.uint8
    assert np.array_equal(result.get_sform(), source.get_sform())
    assert np.array_equal(result.get_qform(), source.get_qform())
    assert int(result.header["sform_code"]) == 2 and int(result.header["qform_code"]) == 1
    assert np.array_equal(result.header["pixdim"][1:4], source.header["pixdim"][1:4])


def test_qform_only_input_keeps_sform_unset(tmp_path, make_package):
    phantom = make_phantom((24, 24, 8), seed=1)
    source = _write(tmp_path / "q.nii", phantom.image, _affine("oblique"), sform_code=0, qform_code=1)
    outputs = segment_case(tmp_path / "q.nii", Segmenter(load_package(make_package()), device="cpu"))
    result = nib.load(str(outputs.segmentation))
    assert outputs.segmentation == tmp_path / "q_seg.nii.gz"
    assert int(result.header["sform_code"]) == 0 and int(result.header["qform_code"]) == 1
    assert np.array_equal(result.get_qform(), source.get_qform())
    assert np.allclose(result.affine, source.affine, atol=1e-6)


def test_an_analyze_style_pair_keeps_its_codes_and_units(tmp_path, make_package):
    phantom = make_phantom((24, 24, 8), seed=2)
    pair = nib.Nifti1Pair(phantom.image, np.diag([0.001, 0.001, 0.002, 1.0]))
    pair.header.set_sform(np.diag([0.001, 0.001, 0.002, 1.0]), code=2)
    pair.header.set_qform(None, code=0)
    pair.header.set_xyzt_units("meter", "sec")
    nib.save(pair, tmp_path / "pair.img")
    outputs = segment_case(tmp_path / "pair.img", Segmenter(load_package(make_package()), device="cpu"),
                           out_dir=tmp_path / "out")
    written = nib.load(str(outputs.segmentation))
    assert int(written.header["sform_code"]) == 2 and int(written.header["qform_code"]) == 0
    assert written.header.get_xyzt_units()[0] == "meter"
    assert np.array_equal(written.get_sform(), pair.get_sform())


def _raw(path):
    """The header as stored, before nibabel's repairs on loading."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as handle:
        return nib.Nifti1Header.from_fileobj(handle, check=False)


def test_harmless_header_oddities_are_read_and_written_back_as_stored(tmp_path, make_package):
    """A time unit NIfTI does not define (a 3D tool has no use for it), and a zero voxel size where the sform gives
    the geometry: read, and the output's header holds the input's bytes, not nibabel's repairs."""
    segmenter = Segmenter(load_package(make_package()), device="cpu")
    array = make_phantom((24, 24, 8), seed=2).image
    image = _oblique_image(array)
    image.header["xyzt_units"] = 2 | 56
    image.header["pixdim"][3] = 0
    nib.save(image, tmp_path / "odd.nii.gz")
    outputs = segment_case(tmp_path / "odd.nii.gz", segmenter, out_dir=tmp_path / "out")
    stored, written = _raw(tmp_path / "odd.nii.gz"), _raw(outputs.segmentation)
    assert float(stored["pixdim"][3]) == 0.0
    assert np.array_equal(written["pixdim"], stored["pixdim"]) and int(written["xyzt_units"]) == 58
    assert np.array_equal(nib.load(outputs.segmentation).affine, nib.load(tmp_path / "odd.nii.gz").affine)


def test_the_segmentation_does_not_copy_the_inputs_free_text_or_extensions(tmp_path, make_package):
    """Free-text header fields and extensions (which may hold a name or a whole DICOM header) stay behind; the
    geometry fields are still the input's."""
    array = make_phantom((24, 24, 8), seed=4).image
    image = nib.Nifti1Image(array, _affine("oblique"))
    image.header["descrip"] = b"Doe^Jane 1961-02-03"
    image.header["aux_file"] = b"jane.lut"
    image.header["db_name"] = b"ward 7"
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"PatientName=Doe^Jane"))  # ecode 6: comment
    nib.save(image, tmp_path / "named.nii.gz")
    outputs = segment_case(tmp_path / "named.nii.gz", Segmenter(load_package(make_package()), device="cpu"),
                           out_dir=tmp_path / "out")
    written = nib.load(outputs.segmentation)
    assert len(written.header.extensions) == 0
    assert written.header["descrip"].item() == b"medseg segmentation"
    assert written.header["aux_file"].item() == b"" and written.header["db_name"].item() == b""
    assert b"Doe" not in gzip.decompress(outputs.segmentation.read_bytes())
    assert np.array_equal(written.get_sform(), nib.load(tmp_path / "named.nii.gz").get_sform())
    assert written.header.get_intent()[0] == "label"


def test_labels_are_handed_to_nibabel_in_its_order_and_written_the_same(tmp_path, monkeypatch):
    """A C-ordered segmentation (the inference's) is given to nibabel in Fortran order, NIfTI's order on disk, which
    it writes whole; given as it was, nibabel gathered it one slice at a time (1.1 s of CPU for a 512×512×300
    segmentation, 0.25 s now). The file is byte for byte what the array's own order writes."""
    import medseg.io.nifti_write as nifti_write
    from medseg.volume import Volume

    rng = np.random.default_rng(0)
    labels = np.ascontiguousarray(rng.integers(0, 4, (37, 23, 11), dtype=np.uint8))
    like = Volume(np.zeros((37, 23, 11), np.float32), np.diag([0.7, 0.8, 1.5, 1.0]), source=tmp_path / "x.nii.gz")
    handed = []
    made = nifti_write.labels_image
    monkeypatch.setattr(nifti_write, "labels_image", lambda array, *a, **k: handed.append(array) or made(array, *a,
                                                                                                         **k))
    nifti_write.write_labels(labels, like, tmp_path / "c.nii.gz", top_label=3)
    assert len(handed) == 1 and handed[0].flags.f_contiguous
    assert np.array_equal(handed[0], labels)
    nifti_write.write_labels(np.asfortranarray(labels), like, tmp_path / "f.nii.gz", top_label=3)
    assert (tmp_path / "c.nii.gz").read_bytes() == (tmp_path / "f.nii.gz").read_bytes()
    assert np.array_equal(np.asarray(nib.load(tmp_path / "c.nii.gz").dataobj), labels)
