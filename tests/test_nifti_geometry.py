"""The geometry read from a NIfTI or Analyze header (medseg.io.nifti_geometry): spatial units other than mm, a
header without orientation, an sform and a qform that disagree or cannot be used, a slice without a thickness,
header faults nibabel would repair in silence; each with its note in the sidecar."""

import struct
import warnings

import nibabel as nib
import numpy as np
import pytest
from nifti_cases import _affine, _oblique_image, _segment

from medseg.errors import InputError, MedsegWarning
from medseg.inference import Segmenter
from medseg.io.nifti import read_nifti
from medseg.package import load_package
from medseg.segment import segment_case
from medseg.synthetic import make_phantom, rotation_matrix


def _hippocampus_like(seed=5):
    """A hippocampus-sized volume (1 mm) that the shipped hippocampus model resamples and reorients."""
    return make_phantom((36, 50, 34), seed=seed).image


@pytest.mark.parametrize(("unit", "scale"), [("micron", 1000.0), ("meter", 0.001)])
def test_spatial_units_other_than_mm_are_honoured(tmp_path, unit, scale):
    """The same 1 mm voxels stored in microns or metres give the same labels and volumes as in mm."""
    package = load_package("hippocampus")
    array = _hippocampus_like()
    mm = nib.Nifti1Image(array, np.eye(4))
    mm.header.set_xyzt_units("mm", "sec")
    nib.save(mm, tmp_path / "mm.nii.gz")
    other = nib.Nifti1Image(array, np.diag([scale, scale, scale, 1.0]))
    other.header.set_xyzt_units(unit, "sec")
    nib.save(other, tmp_path / f"{unit}.nii.gz")
    labels_mm, sidecar_mm = _segment(tmp_path / "mm.nii.gz", package, tmp_path / "a")
    labels_other, sidecar_other = _segment(tmp_path / f"{unit}.nii.gz", package, tmp_path / "b")
    assert labels_mm.any()
    np.testing.assert_array_equal(labels_other, labels_mm)
    # equal to float32 precision: the header stores 0.001 m as 0.0010000000475
    assert sidecar_other["label_volume_ml"] == pytest.approx(sidecar_mm["label_volume_ml"], rel=1e-6)
    written = nib.load(tmp_path / "b" / f"{unit}_seg.nii.gz")
    source = nib.load(tmp_path / f"{unit}.nii.gz")
    assert written.header.get_xyzt_units()[0] == unit and np.array_equal(written.affine, source.affine)
    # the sidecar's affine is in mm, not in the file's unit, and it says so (it did not)
    np.testing.assert_allclose(sidecar_other["affine"], np.eye(4), atol=1e-6)
    name = {"micron": "micron", "meter": "metre"}[unit]
    assert sidecar_other["input_info"]["units_note"] == (
        f"the file's spatial unit is the {name} (xyzt_units): the affine, spacing and volumes recorded here are in "
        f"mm; the segmentation keeps the file's header, in {name}s")
    assert "units_note" not in sidecar_mm["input_info"]


def test_a_header_without_orientation_is_read_by_nifti_method_1_with_a_warning(tmp_path, caplog):
    """sform and qform codes 0: x = i*pixdim1 (no left/right flip, unlike nibabel's Analyze fallback)."""
    package = load_package("hippocampus")
    array = _hippocampus_like()
    coded = nib.Nifti1Image(array, np.diag([1.0, 1.0, 1.0, 1.0]))
    nib.save(coded, tmp_path / "coded.nii.gz")
    header = nib.Nifti1Header()
    header.set_data_shape(array.shape)
    header.set_zooms((1.0, 1.0, 1.0))
    nib.save(nib.Nifti1Image(array, None, header=header), tmp_path / "nocode.nii.gz")
    assert int(nib.load(tmp_path / "nocode.nii.gz").header["sform_code"]) == 0
    with caplog.at_level("WARNING"):
        labels_nocode, sidecar = _segment(tmp_path / "nocode.nii.gz", package, tmp_path / "a")
    labels_coded, _ = _segment(tmp_path / "coded.nii.gz", package, tmp_path / "b")
    np.testing.assert_array_equal(labels_nocode, labels_coded)
    assert "NIfTI method 1 assumed" in sidecar["input_info"]["orientation_note"]
    assert any("no orientation in the header" in r.getMessage() for r in caplog.records)
    written = nib.load(tmp_path / "a" / "nocode_seg.nii.gz")
    assert int(written.header["sform_code"]) == 0 and int(written.header["qform_code"]) == 0


def test_a_slice_without_a_thickness_says_its_ml_assume_1_mm(tmp_path, make_package, caplog):
    """Before, a 2D image whose geometry comes from pixdim (qform only) with pixdim[3] 0 got nibabel's 1 mm
    silently: its label volumes in ml rested on a guess nobody was told about."""
    import struct

    image = nib.Nifti1Image(make_phantom((40, 36, 1), seed=4).image[:, :, 0], np.diag([0.8, 0.8, 3.0, 1.0]))
    image.header.set_sform(None, code=0)
    image.header.set_qform(np.diag([0.8, 0.8, 3.0, 1.0]), code=1)
    nib.save(image, tmp_path / "slice.nii")
    data = bytearray((tmp_path / "slice.nii").read_bytes())
    data[88:92] = struct.pack("<f", 0.0)  # pixdim[3], as a file that never wrote it stores it
    (tmp_path / "slice.nii").write_bytes(bytes(data))
    assert int(nib.load(tmp_path / "slice.nii").header["sform_code"]) == 0
    with caplog.at_level("WARNING"):
        labels, sidecar = _segment(tmp_path / "slice.nii", load_package(make_package()), tmp_path / "out")
    note = ("slice thickness unknown (pixdim[3] 0 along k, an axis of one voxel): 1 mm assumed; the volumes in ml "
            "rest on it")
    assert sidecar["input_info"] == {"stored_shape": [40, 36], "thickness_note": note}
    assert any(r.getMessage() == f"{tmp_path / 'slice.nii'}: {note}" for r in caplog.records)
    counted = {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True)) if k}
    assert counted
    assert {k: v for k, v in sidecar["label_volume_ml"].items() if k in counted} == pytest.approx(
        {k: n * 0.8 * 0.8 * 1.0 / 1000 for k, n in counted.items()}, rel=1e-5)
    # a negative thickness is read as its magnitude (nibabel's reading), not as 1 mm: no note
    data[88:92] = struct.pack("<f", -2.0)
    (tmp_path / "negative.nii").write_bytes(bytes(data))
    negative = read_nifti(tmp_path / "negative.nii")
    assert "thickness_note" not in negative.info and negative.voxel_volume_ml == pytest.approx(0.8 * 0.8 * 2 / 1000)
    # with a thickness in the header, or an sform that gives one, there is nothing to say
    nib.save(nib.Nifti1Image(image.get_fdata(dtype=np.float32), np.diag([0.8, 0.8, 3.0, 1.0])), tmp_path / "ok.nii")
    assert "thickness_note" not in read_nifti(tmp_path / "ok.nii").info


def test_an_sform_and_qform_that_disagree_are_warned_about(tmp_path, make_package, caplog):
    """Before, a header whose qform placed the volume 10 mm from its sform was read without a word."""
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    image = nib.Nifti1Image(make_phantom((40, 40, 8), seed=3).image, affine)
    moved = affine.copy()
    moved[0, 3] += 10.0
    image.header.set_qform(moved, code=1)
    nib.save(image, tmp_path / "two.nii.gz")
    with caplog.at_level("WARNING"):
        _, sidecar = _segment(tmp_path / "two.nii.gz", load_package(make_package()), tmp_path / "out")
    note = ("the header's sform and qform disagree, placing voxels up to 10 mm apart: the sform is used (as nibabel "
            "does); a tool that reads the qform shows the input, and its segmentation, elsewhere")
    assert sidecar["input_info"] == {"qform_note": note}
    assert any(r.getMessage() == f"{tmp_path / 'two.nii.gz'}: {note}" for r in caplog.records)
    written = nib.load(tmp_path / "out" / "two_seg.nii.gz")
    assert np.array_equal(written.get_qform(), image.get_qform()) and np.array_equal(written.affine, affine)
    # nibabel's own float32 round trip of an oblique affine is one grid
    oblique = nib.Nifti1Image(np.zeros((64, 64, 20), np.float32), _affine("oblique"))
    nib.save(oblique, tmp_path / "oblique.nii.gz")
    assert "qform_note" not in read_nifti(tmp_path / "oblique.nii.gz").info


@pytest.mark.parametrize("fill", [0.0, float("nan")], ids=["all zero", "NaN"])
def test_a_coded_sform_left_unfilled_falls_back_to_the_qform(tmp_path, make_package, caplog, fill):
    """sform_code 1 with srow_x/y/z all zero (an exporter that set the code without the rows) beside a valid qform
    was refused as "the affine is singular"; the qform places the voxels, as ITK reads it, with a note."""
    affine = _affine("oblique")
    image = nib.Nifti1Image(make_phantom((40, 36, 8), seed=3).image, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    nib.save(image, tmp_path / "whole.nii")
    raw = bytearray((tmp_path / "whole.nii").read_bytes())
    raw[280:328] = struct.pack("<12f", *([fill] * 12))  # srow_x, srow_y, srow_z
    (tmp_path / "rows.nii").write_bytes(bytes(raw))
    volume = read_nifti(tmp_path / "rows.nii")
    assert np.allclose(volume.affine, nib.load(tmp_path / "whole.nii").header.get_qform(), atol=1e-6)
    broken = "zero in its voxel axes" if fill == 0 else "not finite"
    note = (f"the header's sform (code 1) is {broken}: the voxels are placed by its qform (code 1) instead; a tool "
            "that reads the sform cannot place the input, nor its segmentation, which keeps the header")
    assert volume.info == {"orientation_note": note}  # no "sform and qform disagree" beside it
    with caplog.at_level("WARNING"):
        _, sidecar = _segment(tmp_path / "rows.nii", load_package(make_package()), tmp_path / "out")
    assert sidecar["input_info"] == {"orientation_note": note}
    assert f"{tmp_path / 'rows.nii'}: {note}" in caplog.text
    written = read_nifti(tmp_path / "out" / "rows_seg.nii.gz")  # the header as stored, read the same way
    assert np.array_equal(written.affine, volume.affine)
    assert int(nib.load(tmp_path / "out" / "rows_seg.nii.gz").header["sform_code"]) == 1
    # with a qform that is no rotation either, nothing places the voxels: one line, not nibabel's ValueError
    bad_qform = bytearray(raw)
    bad_qform[256:268] = struct.pack("<3f", 0.9, 0.9, 0.9)  # quatern_b, c, d
    (tmp_path / "neither.nii").write_bytes(bytes(bad_qform))
    with pytest.raises(InputError, match=rf"neither.nii: the header's sform is {broken} and its qform invalid "
                                         r"\(quatern_b, c, d are not part of a unit quaternion: .*\): nothing places "
                                         r"the voxels$"):
        read_nifti(tmp_path / "neither.nii")
    # a coded sform alone (no qform to fall back on) is still refused
    raw[252:254] = struct.pack("<h", 0)  # qform_code
    (tmp_path / "alone.nii").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="the affine is singular or not finite"):
        read_nifti(tmp_path / "alone.nii")


def test_a_qform_that_is_no_rotation_is_warned_about_or_named(tmp_path, make_package):
    """quatern_b, c, d with b² + c² + d² > 1 (no unit quaternion): with an sform too, the qform check ended in a
    traceback; alone, the error said "cannot read header (w2 should be positive …)"."""
    from medseg.errors import ImageReadError

    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    image = nib.Nifti1Image(make_phantom((40, 40, 8), seed=3).image, affine)
    image.header.set_qform(affine, code=1)
    nib.save(image, tmp_path / "plain.nii")
    raw = bytearray((tmp_path / "plain.nii").read_bytes())
    raw[256:268] = struct.pack("<fff", 0.9, 0.9, 0.0)  # quatern_b, c, d
    (tmp_path / "both.nii").write_bytes(bytes(raw))
    _, sidecar = _segment(tmp_path / "both.nii", load_package(make_package()), tmp_path / "out")
    note = sidecar["input_info"]["qform_note"]
    assert note.startswith("the header's qform is invalid (w2 should be positive") and "the sform is used" in note
    assert np.allclose(nib.load(tmp_path / "out" / "both_seg.nii.gz").affine, affine)
    raw[254:256] = struct.pack("<h", 0)  # sform_code 0: nothing else places the voxels
    (tmp_path / "qform_only.nii").write_bytes(bytes(raw))
    with pytest.raises(ImageReadError) as error:
        read_nifti(tmp_path / "qform_only.nii")
    assert str(error.value).startswith(f"{tmp_path / 'qform_only.nii'}: invalid qform in the header (quatern_b, c, d "
                                       "are not part of a unit quaternion: w2 should be positive")


@pytest.mark.parametrize("pixdim", [float("nan"), float("inf")], ids=["NaN", "inf"])
def test_a_coded_qform_that_is_not_finite_beside_a_coded_sform_is_warned_about(tmp_path, pixdim):
    """pixdim[1] NaN or infinite with both forms coded: the sform placed the voxels, and the qform, which a tool
    that reads it cannot use, went without a word (its distance from the sform was NaN, which no tolerance
    exceeds)."""
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    image = nib.Nifti1Image(make_phantom((40, 40, 8), seed=3).image, affine)
    image.header.set_qform(affine, code=1)
    nib.save(image, tmp_path / "plain.nii")
    raw = bytearray((tmp_path / "plain.nii").read_bytes())
    raw[80:84] = struct.pack("<f", pixdim)  # pixdim[1]
    (tmp_path / "bad.nii").write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's own "invalid value encountered in dot" reached stderr as a line
        volume = read_nifti(tmp_path / "bad.nii")
    assert volume.info == {"qform_note": "the header's qform is not finite (a voxel size in pixdim or a qoffset is "
                                         "NaN or infinite): the sform is used (as nibabel does); a tool that reads "
                                         "the qform may refuse the input and its segmentation, or place them "
                                         "elsewhere"}
    assert np.allclose(volume.affine, affine)


def test_header_faults_nibabel_repairs_quietly_are_refused_in_one_line(tmp_path, make_package):
    """An out-of-range sform code, an undefined spatial unit, or a zero voxel size the geometry depends on would be
    read by nibabel as code 0, mm or 1 mm without a word: the volumes and the overlay would rest on a guess."""
    from medseg.errors import InputError

    segmenter = Segmenter(load_package(make_package()), device="cpu")
    array = make_phantom((24, 24, 8), seed=2).image
    faults = {}
    image = _oblique_image(array)
    image.header["sform_code"] = 9
    faults["code9"] = (image, r"sform_code 9 is not a NIfTI code \(0-4\)")
    image = _oblique_image(array)
    image.header["xyzt_units"] = 5
    faults["unit5"] = (image, r"xyzt_units gives the spatial unit code 5, which NIfTI does not define")
    image = nib.Nifti1Image(array, None)
    image.header.set_qform(_affine("oblique"), code=1)
    image.header["pixdim"][3] = 0
    faults["pixdim0"] = (image, r"voxel size 0 along k \(pixdim\[3\]\) in the header; the spacing of the voxels is "
                                r"unknown")
    image = _oblique_image((array * 100).astype(np.int16))  # read unscaled by nibabel, as if no slope were given
    image.header["scl_slope"], image.header["scl_inter"] = np.inf, 0.0
    faults["slope_inf"] = (image, r"scl_slope is inf: the scaling of the voxel values is unknown")
    for name, (image, message) in faults.items():
        nib.save(image, tmp_path / f"{name}.nii.gz")
        with pytest.raises(InputError, match=rf"^{tmp_path / name}.nii.gz: {message}"):
            segment_case(tmp_path / f"{name}.nii.gz", segmenter, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # a gzip file named .nii: "Cannot work out file type of …", which did not say it is compressed
    gz = tmp_path / "scan.nii"
    gz.write_bytes((tmp_path / "code9.nii.gz").read_bytes())
    with pytest.raises(Exception, match=rf"^{gz}: a gzip-compressed file named without .gz; name it scan.nii.gz$"):
        read_nifti(gz)


def test_an_analyze_file_without_orientation_is_read_as_its_tools_read_it_and_says_so(tmp_path, make_package):
    """Analyze states no orientation: read as nibabel and SPM read it (the origin field, x mirrored), so that the
    segmentation overlays the input in those tools, with the note in the sidecar."""
    segmenter = Segmenter(load_package(make_package()), device="cpu")
    array = make_phantom((24, 24, 8), seed=2).image
    image = nib.Spm99AnalyzeImage(array, np.diag([1.7, 0.8, 0.7, 1.0]))
    image.header["origin"][:3] = [10, 11, 3]
    nib.save(image, tmp_path / "ana.img")
    (tmp_path / "ana.mat").unlink(missing_ok=True)
    source = nib.load(tmp_path / "ana.img")
    assert source.affine[0, 0] < 0 and source.affine[0, 3] == pytest.approx(9 * 1.7)  # mirrored, from the origin
    _, sidecar = _segment(tmp_path / "ana.img", segmenter.package, tmp_path / "a")
    assert sidecar["input_info"]["orientation_note"].startswith(
        "no orientation in the header (an Analyze file without an SPM .mat): read as nibabel and SPM read it")
    assert np.allclose(sidecar["affine"], source.affine)
    written = nib.load(tmp_path / "a" / "ana_seg.nii.gz")
    assert np.allclose(written.affine, source.affine)  # overlays the input


def test_a_slice_whose_sform_gives_no_thickness_is_segmented_with_1_mm_assumed(tmp_path, make_package, caplog):
    """Before, a 2D image whose sform had a zero column for its one-voxel axis was refused as "singular", though
    where each of its pixels lies is fully given; the output keeps the sform as stored."""
    sform = np.eye(4)
    sform[:3, :3] = rotation_matrix(np.radians([20.0, 0.0, 10.0])) @ np.diag([0.8, 0.8, 0.0])
    sform[:3, 3] = [-10.0, 4.0, 7.5]
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((40, 36))
    header.set_sform(sform, code=1)
    header.set_qform(None, code=0)
    pixels = make_phantom((40, 36, 1), seed=4).image[:, :, 0]

    def saved(name, thickness, unit=None):  # pixdim[3] as stored (nibabel writes 1 for a 2D image: patched)
        image = nib.Nifti1Image(pixels, None, header=header.copy())
        if unit:
            image.header.set_xyzt_units(unit)
        nib.save(image, tmp_path / name)
        data = bytearray((tmp_path / name).read_bytes())
        data[88:92] = struct.pack("<f", thickness)
        (tmp_path / name).write_bytes(bytes(data))
        return tmp_path / name

    saved("flat.nii", 0.0)
    volume = read_nifti(tmp_path / "flat.nii")
    np.testing.assert_allclose(volume.affine[:3, :2], sform[:3, :2])
    np.testing.assert_allclose(np.linalg.norm(volume.affine[:3, 2]), 1.0)  # 1 mm across the slice
    np.testing.assert_allclose(volume.affine[:3, :2].T @ volume.affine[:3, 2], 0.0, atol=1e-12)  # normal to it
    note = ("slice thickness unknown (the affine's column for k is zero, an axis of one voxel, and pixdim[3] gives "
            "none): 1 mm assumed; the volumes in ml rest on it")
    assert volume.info["thickness_note"] == note
    with caplog.at_level("WARNING"):
        labels, sidecar = _segment(tmp_path / "flat.nii", load_package(make_package()), tmp_path / "out")
    assert sidecar["input_info"]["thickness_note"] == note
    written = nib.load(tmp_path / "out" / "flat_seg.nii.gz")
    stored = nib.load(tmp_path / "flat.nii").get_sform()
    np.testing.assert_array_equal(written.get_sform(), stored)  # as the input stores it, zero column included
    assert not stored[:3, 2].any()
    assert written.shape == (40, 36, 1) and labels.any()  # a 2D image comes out as one slice
    # the report reads the same geometry (it flagged such a case's grid, and could not draw it)
    from medseg.report.checks import read_labels

    np.testing.assert_allclose(read_labels(tmp_path / "out" / "flat_seg.nii.gz")[1], volume.affine)
    # a thickness the header states (pixdim[3]) is the normal's length, without a note, for the input and for its
    # prediction (written with three dimensions) alike
    stated = read_nifti(saved("stated.nii", 2.5))
    np.testing.assert_allclose(stated.affine[:3, 2], volume.affine[:3, 2] * 2.5)
    assert "thickness_note" not in stated.info and stated.voxel_volume_ml == pytest.approx(0.8 * 0.8 * 2.5 / 1000)
    _segment(tmp_path / "stated.nii", load_package(make_package()), tmp_path / "out")
    np.testing.assert_allclose(read_nifti(tmp_path / "out" / "stated_seg.nii.gz", labels=True).affine, stated.affine)
    np.testing.assert_allclose(read_labels(tmp_path / "out" / "stated_seg.nii.gz")[1], stated.affine)
    # in a file in metres, the assumed thickness is still 1 mm
    metres = read_nifti(saved("metres.nii", 0.0, unit="meter"))
    np.testing.assert_allclose(np.linalg.norm(metres.affine[:3, :3], axis=0), [800.0, 800.0, 1.0])
    # a zero column along an axis of more than one voxel is still refused
    header = header.copy()
    header.set_data_shape((40, 36, 3))
    nib.save(nib.Nifti1Image(np.zeros((40, 36, 3), np.float32), None, header=header), tmp_path / "thick.nii.gz")
    with pytest.raises(Exception, match="singular"):
        read_nifti(tmp_path / "thick.nii.gz")


def test_a_negative_qfac_other_than_minus_1_mirrors_k_as_the_nifti_library_reads_it(tmp_path, caplog):
    """pixdim[0] (qfac) stored as -0.5 or -2: nibabel repairs it to 1, so a qform-placed file was read mirrored
    along k against FSL, ITK and AFNI (nifti1_io takes any negative qfac as -1), with no word of it: its labels,
    scored against the same labels stored with qfac -1, were refused as lying on another grid."""
    from medseg.scoring import score_prediction

    affine = np.diag([0.9, 1.1, 2.0, 1.0])
    affine[:3, 2] *= -1  # k runs towards I: a qform holds it with qfac -1
    affine[:3, 3] = [-10.0, 20.0, 30.0]
    labels = np.zeros((12, 10, 8), np.uint8)
    labels[2:6, 3:7, 0:3] = 1  # near k = 0 only: mirrored along k it lies elsewhere
    labels[7:10, 1:4, 1:2] = 2
    image = nib.Nifti1Image(labels, None)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(None, code=0)
    nib.save(image, tmp_path / "minus1.nii")
    stored = bytearray((tmp_path / "minus1.nii").read_bytes())
    assert struct.unpack("<f", stored[76:80]) == (-1.0,)
    for qfac in (-0.5, -2.0):
        stored[76:80] = struct.pack("<f", qfac)  # pixdim[0]
        (tmp_path / f"q{qfac:g}.nii").write_bytes(bytes(stored))
    # any other value of pixdim[0] is read as 1 by both (0: "should not occur", NIfTI says, and means 1)
    stored[76:80] = struct.pack("<f", 0.5)
    (tmp_path / "q0.5.nii").write_bytes(bytes(stored))
    reference = read_nifti(tmp_path / "minus1.nii")
    np.testing.assert_allclose(reference.affine, affine, atol=1e-6)
    assert reference.info == {}
    for qfac in (-0.5, -2.0):
        with caplog.at_level("WARNING"):
            volume = read_nifti(tmp_path / f"q{qfac:g}.nii")
        np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
        note = (f"pixdim[0] (qfac) is {qfac:g}, where NIfTI defines only 1 and -1: read as -1 (the k axis mirrored), "
                "as the NIfTI reference library (FSL, ITK, AFNI) reads a negative qfac; nibabel reads it as 1, which "
                "shows the input, and its segmentation, mirrored along k")
        assert volume.info == {"qfac_note": note}
        assert f"{tmp_path / f'q{qfac:g}.nii'}: {note}" in caplog.text
        with pytest.warns(MedsegWarning, match=r"minus1\.nii, the reference given for .*: named for another case"):
            record = score_prediction(tmp_path / f"q{qfac:g}.nii", tmp_path / "minus1.nii", case_id="q")
        assert [record["labels"][key]["dice"] for key in ("1", "2")] == [1.0, 1.0]
        assert not record.get("reference_reordered")
    unflipped = read_nifti(tmp_path / "q0.5.nii")
    np.testing.assert_allclose(unflipped.affine[:3, 2], -affine[:3, 2], atol=1e-6)
    assert unflipped.info == {}
    # beside a coded sform that places the voxels, the qform is read the same way: no false "disagree" note
    image.header.set_sform(affine, code=1)
    nib.save(image, tmp_path / "both.nii")
    both = bytearray((tmp_path / "both.nii").read_bytes())
    both[76:80] = struct.pack("<f", -0.5)
    (tmp_path / "both_q.nii").write_bytes(bytes(both))
    assert read_nifti(tmp_path / "both_q.nii").info == {}


# quatern_b, c, d of a 180° turn about x + y, (√½, √½, 0), typed to six decimals: b² + c² + d² = 1.0000006, a
# rounding beyond a unit quaternion (and beyond nibabel's float32 tolerance)
_TYPED_QUATERNION = struct.pack("<3f", 0.707107, 0.707107, 0.0)


def _typed_quaternion(tmp_path, shape) -> tuple[np.ndarray, nib.Nifti1Image, bytearray]:
    """A phantom of ``shape`` (seed 3) whose qform alone (sform code 0) places it turned 180° about x + y, on
    0.8 × 0.8 × 2 mm voxels, saved exactly as ``tmp_path/exact.nii``: its affine, the image, and that file's bytes
    with quatern_b, c, d typed to six decimals (:data:`_TYPED_QUATERNION`), to be written under another name."""
    affine = np.eye(4)
    affine[:3, :3] = [[0, 0.8, 0], [0.8, 0, 0], [0, 0, -2.0]]  # 180° about x + y
    affine[:3, 3] = [20.0, 30.0, -5.0]
    image = nib.Nifti1Image(make_phantom(shape, seed=3).image, None)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(None, code=0)
    nib.save(image, tmp_path / "exact.nii")
    raw = bytearray((tmp_path / "exact.nii").read_bytes())
    raw[256:268] = _TYPED_QUATERNION  # quatern_b, c, d
    return affine, image, raw


def test_a_qform_quaternion_rounded_beyond_a_unit_one_is_read_as_the_nifti_library_reads_it(tmp_path, make_package,
                                                                                             caplog):
    """quatern_b, c, d typed to six decimals, (0.707107, 0.707107, 0): b² + c² + d² = 1.0000006, beyond nibabel's
    float32 tolerance, so a qform-only file FSL and ITK read as a 180° rotation was refused as "invalid qform".
    It is read as nifti1_io reads it (normalised), with a note; a quaternion further from a unit one still is not."""
    from medseg.errors import ImageReadError

    affine, image, raw = _typed_quaternion(tmp_path, (24, 24, 8))
    (tmp_path / "typed.nii").write_bytes(bytes(raw))
    with caplog.at_level("WARNING"):
        volume = read_nifti(tmp_path / "typed.nii")
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    note = ("quatern_b, c, d lie 6.4e-07 beyond a unit quaternion (values rounded to a few decimals): read as the "
            "NIfTI reference library (FSL, ITK, AFNI) reads them, normalised; nibabel refuses the input, and its "
            "segmentation, which keeps the header")
    assert volume.info == {"quaternion_note": note}
    assert f"{tmp_path / 'typed.nii'}: {note}" in caplog.text
    assert read_nifti(tmp_path / "exact.nii").info == {}
    segmenter = Segmenter(load_package(make_package()), device="cpu")
    exact = segment_case(tmp_path / "exact.nii", segmenter, out_dir=tmp_path / "a")
    typed = segment_case(tmp_path / "typed.nii", segmenter, out_dir=tmp_path / "b")  # was an error
    written = read_nifti(typed.segmentation)  # the header as stored (nibabel refuses it), read the same way
    np.testing.assert_allclose(written.affine, affine, atol=1e-6)
    np.testing.assert_array_equal(written.array, read_nifti(exact.segmentation).array)
    np.testing.assert_allclose(typed.record["affine"], affine, atol=1e-6)
    # beside a coded sform that agrees, such a qform is no "invalid qform" either (it was, in a warning)
    image.header.set_sform(affine, code=1)
    nib.save(image, tmp_path / "both.nii")
    both = bytearray((tmp_path / "both.nii").read_bytes())
    both[256:268] = _TYPED_QUATERNION
    (tmp_path / "both_typed.nii").write_bytes(bytes(both))
    assert read_nifti(tmp_path / "both_typed.nii").info == {}
    raw[256:268] = struct.pack("<3f", 0.9, 0.9, 0.0)  # no rotation: refused as before
    (tmp_path / "none.nii").write_bytes(bytes(raw))
    with pytest.raises(ImageReadError, match="none.nii: invalid qform in the header"):
        read_nifti(tmp_path / "none.nii")


def test_a_rounded_qform_quaternion_is_read_whatever_the_file_is_named(tmp_path):
    """A NIfTI file named .nii.gz but stored uncompressed, or named in mixed case (.Nii), is opened by medseg, not by
    nibabel's name-based loader: with quatern_b, c, d a rounding beyond a unit quaternion it was still refused as
    "invalid qform", where the same file named .nii was read (and ITK reads the uncompressed .nii.gz)."""
    from medseg.errors import ImageReadError

    affine, _, raw = _typed_quaternion(tmp_path, (12, 10, 6))
    for name in ("stored.nii.gz", "Mixed.Nii"):
        (tmp_path / name).write_bytes(bytes(raw))
        volume = read_nifti(tmp_path / name)
        np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
        assert volume.info["quaternion_note"].startswith("quatern_b, c, d lie 6.4e-07 beyond a unit quaternion")
    raw[256:268] = struct.pack("<3f", 0.9, 0.9, 0.0)  # no rotation: refused as before
    for name in ("none.nii.gz", "None.Nii"):
        (tmp_path / name).write_bytes(bytes(raw))
        with pytest.raises(ImageReadError, match=f"{name}: invalid qform in the header"):
            read_nifti(tmp_path / name)


def test_a_rounded_qform_quaternion_that_places_the_voxels_beside_an_empty_sform_is_noted(tmp_path):
    """A coded sform whose rows are zero is set aside and the qform places the voxels: a quaternion there a rounding
    beyond a unit one was normalised without a word (the note came only where nibabel refused the file), while a
    negative qfac there is noted. nibabel reads the empty sform here, so the note does not say it refuses the file."""
    affine, image, raw = _typed_quaternion(tmp_path, (12, 10, 6))
    raw[254:256] = struct.pack("<h", 1)  # sform_code 1, srow_x, y, z left zero
    assert not any(raw[280:328])
    (tmp_path / "empty_sform.nii").write_bytes(bytes(raw))
    volume = read_nifti(tmp_path / "empty_sform.nii")
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    assert volume.info["quaternion_note"] == (
        "quatern_b, c, d lie 6.4e-07 beyond a unit quaternion (values rounded to a few decimals): read as the NIfTI "
        "reference library (FSL, ITK, AFNI) reads them, normalised")
    assert volume.info["orientation_note"].startswith("the header's sform (code 1) is zero in its voxel axes")
    # a usable sform places the voxels: the qform's rounding is no concern of the reader (compared only)
    image.header.set_sform(affine, code=1)
    nib.save(image, tmp_path / "both.nii")
    both = bytearray((tmp_path / "both.nii").read_bytes())
    both[256:268] = _TYPED_QUATERNION
    (tmp_path / "both_typed.nii").write_bytes(bytes(both))
    assert read_nifti(tmp_path / "both_typed.nii").info == {}
