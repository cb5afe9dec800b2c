"""The DICOM reader on every series of the real data folder, against dcm2niix's conversions (``ref/``, or
dcm2niix run here when a folder has none), compared in world space: dcm2niix stores voxels in its own order."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import dcm2niix_path, to_reference_grid

from medseg.errors import DicomError
from medseg.io.dicom import describe_folder, read_dicom_series
from medseg.io.dicom_series import scan_folder
from medseg.io.seg_writing import write_dicom_seg

pytestmark = pytest.mark.shared_data
AFFINE_TOL_MM = 1e-4


@pytest.fixture(scope="module")
def dicom_root(shared_data) -> Path:
    root = shared_data / "dicom"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return root


def reference_for(candidate, root: Path, tmp_path: Path) -> Path:
    """dcm2niix's conversion of ``candidate``: from ``ref/`` beside its folder (matched by series number when
    there are several), else made now with dcm2niix."""
    top = root / candidate.files[0].relative_to(root).parts[0]
    refs = sorted((top / "ref").glob("*.json")) if (top / "ref").is_dir() else []
    if len(refs) > 1:
        refs = [r for r in refs if json.loads(r.read_text()).get("SeriesNumber") == candidate.number]
    if len(refs) == 1:
        return refs[0].with_suffix(".nii.gz")
    if dcm2niix_path() is None:
        pytest.skip(f"{top} has no ref/ and dcm2niix is not installed")
    out = tmp_path / top.name
    out.mkdir(parents=True, exist_ok=True)
    folder = candidate.files[0].parent
    subprocess.run([dcm2niix_path(), "-z", "y", "-b", "n", "-f", "ref", "-o", str(out), str(folder)], check=True,
                   capture_output=True)
    return out / "ref.nii.gz"


def ipp_error_mm(affine: np.ndarray, volume) -> float:
    """Largest distance between voxel (0, 0, k) under ``affine`` (on the volume's grid) and slice k's
    ImagePositionPatient: how far an affine departs from the DICOM positions."""
    worst = 0.0
    for k, path in enumerate(volume.dicom.paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        ras = np.asarray(ds.ImagePositionPatient, dtype=float) * [-1.0, -1.0, 1.0]
        worst = max(worst, float(np.abs((affine @ [0.0, 0.0, k, 1.0])[:3] - ras).max()))
    return worst


def test_every_shared_series_equals_dcm2niix(dicom_root, tmp_path):
    candidates = scan_folder(dicom_root).candidates
    assert len(candidates) == 4  # ct-jpeg2000, ct-seg, mr-decubitus HFS and HFDL
    results = []
    for candidate in candidates:
        volume = read_dicom_series(dicom_root, series=candidate.uid or candidate.key)
        reference = nib.load(reference_for(candidate, dicom_root, tmp_path))
        ordered, affine_diff = to_reference_grid(volume.array, volume.affine, reference)
        equal = np.array_equal(ordered, reference.get_fdata(dtype=np.float32))
        ours = ipp_error_mm(volume.affine, volume)
        change = np.rint(np.linalg.inv(reference.affine) @ volume.affine)
        theirs = ipp_error_mm(reference.affine @ change, volume)  # dcm2niix's affine on our index order
        results.append((candidate.label(), volume.shape, volume.spacing_mm, affine_diff, equal, ours, theirs))
        assert equal, f"{candidate.label()}: voxels differ from dcm2niix"
        assert ours < 1e-5, f"{candidate.label()}: our affine is {ours} mm off the DICOM positions"
        # within 1e-4 mm of dcm2niix, unless dcm2niix itself is further than that from the DICOM positions
        # (it takes the slice step from the first two slices' rounded positions), then within its own error
        assert affine_diff <= max(AFFINE_TOL_MM, theirs + 1e-5), f"{candidate.label()}: affine off by {affine_diff}"
    for row in results:
        print("shared series:", *row)


def test_ct_jpeg2000_geometry_and_hounsfield(dicom_root):
    volume = read_dicom_series(dicom_root / "ct-jpeg2000" / "series")
    assert volume.shape == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing_mm, (0.9765625, 0.9765625, 2.0), atol=1e-9)  # SliceThickness is 3
    assert volume.info["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert volume.info["orientation"] == "LPS" and volume.info["flags"] == ["no-series-uid"]
    assert volume.array.min() == -1024.0  # intercept -1024 applied
    reference = nib.load(dicom_root / "ct-jpeg2000" / "ref" / "example_ct_dicom.nii.gz")
    _, affine_diff = to_reference_grid(volume.array, volume.affine, reference)
    assert affine_diff < AFFINE_TOL_MM


def test_decubitus_positions_keep_patient_geometry_like_dcm2niix(dicom_root):
    """HFS and HFDL (lying on the left side) scans of the same head with the same prescription: DICOM
    coordinates are patient-based, so both give the same affine, as dcm2niix's references do; the
    pixels differ (the head lay differently in the magnet)."""
    hfs, hfdl = read_dicom_series(dicom_root / "mr-decubitus" / "HFS"), read_dicom_series(
        dicom_root / "mr-decubitus" / "HFDL")
    assert (hfs.info["patient_position"], hfdl.info["patient_position"]) == ("HFS", "HFDL")
    refs = {json.loads(p.read_text())["PatientPosition"]: nib.load(p.with_suffix(".nii.gz"))
            for p in (dicom_root / "mr-decubitus" / "ref").glob("*.json")}
    np.testing.assert_allclose(refs["HFS"].affine, refs["HFDL"].affine, atol=1e-6)
    np.testing.assert_allclose(hfs.affine, hfdl.affine, atol=1e-9)
    assert hfs.info["orientation"] == "PIR" and hfs.info["plane"] == "sagittal"
    np.testing.assert_allclose(hfs.spacing_mm, (1.015625, 1.015625, 4.8), atol=1e-6)  # thickness 4, gap 0.8
    assert not np.array_equal(hfs.array, hfdl.array)
    for volume in (hfs, hfdl):
        ordered, _ = to_reference_grid(volume.array, volume.affine, refs[volume.info["patient_position"]])
        np.testing.assert_array_equal(ordered, refs[volume.info["patient_position"]].get_fdata(dtype=np.float32))


def test_ct_seg_series_matches_its_nrrd_label_map_geometry(dicom_root):
    volume = read_dicom_series(dicom_root / "ct-seg")  # the SEG object beside it is ignored, not chosen
    assert volume.shape == (512, 512, 3)
    assert volume.info["ignored_objects"] == ["liver.dcm: SEG object, not an image"]
    header = {}
    with open(dicom_root / "ct-seg" / "liver_seg.nrrd", "rb") as handle:
        for raw in handle:
            line = raw.decode("latin-1").strip()
            if not line:
                break
            if ": " in line:
                key, value = line.split(": ", 1)
                header[key] = value
    assert header["space"] == "left-posterior-superior"
    vectors = [np.array([float(v) for v in part.strip("()").split(",")]) for part in
               header["space directions"].split()]
    origin = np.array([float(v) for v in header["space origin"].strip("()").split(",")])
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack(vectors)
    lps[:3, 3] = origin
    np.testing.assert_allclose(volume.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, atol=1e-4)


def test_inspect_the_whole_shared_folder_refuses_to_guess(dicom_root):
    report = describe_folder(dicom_root)
    assert report["chosen"]["key"] is None and "4 eligible series" in report["chosen"]["reason"]
    assert sorted((e["modality"], e["images"]) for e in report["series"]) == [("CT", 3), ("CT", 20), ("MR", 35),
                                                                              ("MR", 35)]
    assert [o["path"] for o in report["ignored_objects"]] == ["ct-seg/liver.dcm"]


def test_dicom_seg_of_a_real_segmentation_lands_on_its_slices(dicom_root, tmp_path):
    """The shared model segmentation (on dcm2niix's grid) → our grid → DICOM SEG → each frame compared with
    the segmentation resampled onto the source slice it references. The shared series is anonymised without a
    SeriesInstanceUID, which a SEG must reference (refused as it is): a copy gets one."""
    from pydicom.uid import generate_uid

    with pytest.raises(DicomError, match="series: no SeriesInstanceUID in any of its 20 files "
                                         ".anonymised.., so a DICOM SEG cannot name the series"):
        write_dicom_seg(np.zeros((512, 512, 20), np.uint8), read_dicom_series(dicom_root / "ct-jpeg2000" / "series"),
                        tmp_path / "refused.dcm", {1: "x"}, "shared-test")
    uid = generate_uid()
    (tmp_path / "series").mkdir()
    for path in sorted((dicom_root / "ct-jpeg2000" / "series").iterdir()):
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = uid
        dataset.save_as(tmp_path / "series" / path.name)
    volume = read_dicom_series(tmp_path / "series")
    segmentation = nib.load(dicom_root / "ct-jpeg2000" / "model_segmentation.nii.gz")
    change = np.rint(np.linalg.inv(volume.affine) @ segmentation.affine)  # their index → our index
    index = np.indices(segmentation.shape).reshape(3, -1)
    ours = (change[:3, :3] @ index + change[:3, 3:]).astype(int)
    labels = np.zeros(volume.shape, np.uint8)
    labels[tuple(ours)] = np.asarray(segmentation.dataobj).astype(np.uint8).reshape(-1)
    values = sorted(int(v) for v in np.unique(labels) if v)
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", {v: f"label {v}" for v in values}, "shared-test")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), 512, 512)
    by_uid = {pydicom.dcmread(p, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID: p
              for p in volume.dicom.paths}
    data = np.asarray(segmentation.dataobj)
    on_source: dict[str, np.ndarray] = {}  # SOP instance UID -> their labels at that image's pixels
    for uid, path in by_uid.items():
        source = pydicom.dcmread(path, stop_before_pixels=True)
        # where each source pixel lies (DICOM's definition), then dcm2niix's voxel there
        rows, columns = np.indices((512, 512))
        iop = np.asarray(source.ImageOrientationPatient, float)
        dr, dc = (float(v) for v in source.PixelSpacing)
        lps = (np.asarray(source.ImagePositionPatient, float)[:, None, None] + iop[:3, None, None] * dc * columns
               + iop[3:, None, None] * dr * rows)
        ras = np.stack([-lps[0], -lps[1], lps[2], np.ones_like(lps[0])]).reshape(4, -1)
        voxel = np.rint(np.linalg.inv(segmentation.affine) @ ras)[:3].astype(int)
        on_source[uid] = data[tuple(voxel)].reshape(512, 512)
    seen = set()
    for frame, groups in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = groups.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        number = int(groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        np.testing.assert_array_equal(pixels[frame].astype(bool), on_source[uid] == values[number - 1])
        seen.add((uid, number))
    present = {(uid, values.index(int(v)) + 1) for uid, plane in on_source.items() for v in np.unique(plane) if v}
    assert present <= seen  # every label present on a slice has its frame


def test_dicom_seg_from_the_ct_seg_series_whose_character_set_is_empty(dicom_root, tmp_path):
    """Its files carry an empty SpecificCharacterSet, which highdicom refuses as it is."""
    import highdicom as hd

    volume = read_dicom_series(dicom_root / "ct-seg" / "series")
    labels = (volume.array > 100).astype(np.uint8)  # bone and contrast, on every slice
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", {1: "dense"}, "shared-test")
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in volume.dicom.paths]
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.PatientID == sources[0].PatientID
    stack = seg.get_pixels_by_source_instance(source_sop_instance_uids=[s.SOPInstanceUID for s in sources],
                                              segment_numbers=[1])
    np.testing.assert_array_equal(stack[..., 0].transpose(2, 1, 0).astype(bool), labels == 1)


def test_evaluate_against_a_reference_on_dcm2niix_grid(dicom_root, tmp_path, capsys):
    """The shared model segmentation lies on dcm2niix's grid (rows reversed against medseg's conversion); the
    same labels on medseg's grid score Dice 1 against it, re-indexed, not refused and not resampled; the QA
    report raises no geometry flag for it."""
    from medseg.cli import main
    from medseg.report.build import build_report

    volume = read_dicom_series(dicom_root / "ct-jpeg2000" / "series")
    reference = dicom_root / "ct-jpeg2000" / "model_segmentation.nii.gz"
    theirs = nib.load(reference)
    ours, _ = to_reference_grid(np.asarray(theirs.dataobj).astype(np.uint8), theirs.affine, volume)
    assert not np.allclose(theirs.affine, volume.affine)  # a different voxel order, not the same grid
    case = tmp_path / "results" / "cases" / "ct"
    case.mkdir(parents=True)
    nib.save(nib.Nifti1Image(ours, volume.affine), case / "ct_seg.nii.gz")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(case / "ct_seg.nii.gz"), str(reference), "-o", str(case / "ct_metrics.json")])
    assert exit_info.value.code == 0
    assert "reference re-indexed onto the prediction's voxel order" in capsys.readouterr().out
    record = json.loads((case / "ct_metrics.json").read_text())
    assert record["reference_reordered"] is True
    values = sorted(int(v) for v in np.unique(ours) if v)
    assert len(values) > 1 and sorted(int(k) for k in record["labels"]) == values
    assert {entry["dice"] for entry in record["labels"].values()} == {1.0}
    assert {entry["hd95_mm"] for entry in record["labels"].values()} == {0.0}
    outputs = build_report(tmp_path / "results", tmp_path / "results" / "report.html")
    summary = json.loads(outputs.summary.read_text())
    assert "geometry" not in summary["flags"] and outputs.overlays == 1  # (labels touch the 20-slice box: flagged)
    assert "scored against a reference holding the same voxels in another order" in outputs.html.read_text()


def test_a_dicom_seg_of_another_tool_is_a_reference_voxel_for_voxel(dicom_root, tmp_path, capsys):
    """dcmqi's liver.dcm (its frames do not state that they keep the source geometry, which highdicom then refuses
    to index by source image; medseg checks every frame's position against its source) read onto the ct-seg
    series equals dcmqi's own NRRD label map, and scores as a reference of a prediction made from that series."""
    import gzip

    from medseg.cli import main
    from medseg.io.seg_reading import read_dicom_seg

    folder = dicom_root / "ct-seg"
    head, _, body = (folder / "liver_seg.nrrd").read_bytes().partition(b"\n\n")
    assert b"encoding: gzip" in head and b"sizes: 512 512 3" in head and b"type: short" in head
    expected = np.frombuffer(gzip.decompress(body), "<i2").reshape(3, 512, 512).transpose(2, 1, 0)
    volume = read_dicom_series(folder / "series")
    labels = read_dicom_seg(folder / "liver.dcm", volume, {0: "background", 1: "liver"})
    assert expected.sum() == 107098 and np.array_equal(labels, expected)

    prediction = labels.astype(np.uint8)
    prediction[:, :, 1] = 0  # one of three slices missed
    nib.save(nib.Nifti1Image(prediction, volume.affine), tmp_path / "ct_seg.nii.gz")
    (tmp_path / "ct_seg.json").write_text(json.dumps({  # what `medseg infer` records of its input and labels
        "input": str(folder / "series"), "labels": {"0": "background", "1": "liver"}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path / "ct_seg.nii.gz"), str(folder / "liver.dcm"), "--json"])
    assert exit_info.value.code == 0
    liver = json.loads(capsys.readouterr().out)["labels"]["1"]
    kept = int(expected[:, :, [0, 2]].sum())
    assert liver["name"] == "liver" and liver["dice"] == pytest.approx(2 * kept / (kept + int(expected.sum())))


def test_a_seg_of_other_images_on_an_anonymised_series_is_named_as_such(dicom_root):
    """The anonymised CT has no series UID to compare the SEG's with: the liver SEG of another CT was refused for its
    segment 'Liver', which the labels lack, not for segmenting other images."""
    from medseg.errors import InputError
    from medseg.io.seg_reading import read_dicom_seg

    volume = read_dicom_series(dicom_root / "ct-jpeg2000" / "series")
    with pytest.raises(InputError, match=r"liver.dcm: segments 3 images that are not in "):
        read_dicom_seg(dicom_root / "ct-seg" / "liver.dcm", volume, {0: "background", 1: "spleen"})


def test_a_dicom_seg_scores_a_prediction_of_dcm2niix_conversion_as_on_its_series(dicom_root, tmp_path, capsys):
    """dcmqi's liver.dcm against a prediction made from dcm2niix's NIfTI of its series (whose rows dcm2niix stores
    reversed): placed by its frames' own geometry on the NIfTI's grid, it scores Dice 1.0 against the same labels,
    with the volume it has on the series' own images (70.362 ml)."""
    from medseg.cli import main
    from medseg.io.seg_reading import read_dicom_seg

    if dcm2niix_path() is None:
        pytest.skip("dcm2niix is not installed (pip install dcm2niix)")
    folder = dicom_root / "ct-seg"
    subprocess.run([dcm2niix_path(), "-z", "y", "-b", "n", "-f", "ct", "-o", str(tmp_path), str(folder / "series")],
                   check=True, capture_output=True)
    converted = nib.load(tmp_path / "ct.nii.gz")
    volume = read_dicom_series(folder / "series")
    names = {"0": "background", "1": "liver"}
    on_series = read_dicom_seg(folder / "liver.dcm", volume, {0: "background", 1: "liver"}).astype(np.uint8)
    prediction, off_mm = to_reference_grid(on_series, volume.affine, converted)
    assert off_mm < AFFINE_TOL_MM and not np.array_equal(prediction, on_series)  # another voxel order
    volumes = {}
    for name, affine, array, source in (("series", volume.affine, on_series, folder / "series"),
                                        ("converted", converted.affine, prediction, tmp_path / "ct.nii.gz")):
        nib.save(nib.Nifti1Image(array, affine), tmp_path / f"{name}_seg.nii.gz")
        (tmp_path / f"{name}_seg.json").write_text(json.dumps({"input": str(source), "labels": names}))
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(tmp_path / f"{name}_seg.nii.gz"), str(folder / "liver.dcm"), "--json"])
        assert exit_info.value.code == 0
        liver = json.loads(capsys.readouterr().out)["labels"]["1"]
        assert (liver["name"], liver["dice"]) == ("liver", 1.0)
        volumes[name] = liver["ref_volume_ml"]
    assert volumes["converted"] == pytest.approx(volumes["series"], rel=1e-6)
    assert volumes["converted"] == pytest.approx(70.362, abs=5e-4)


def test_infer_of_the_whole_shared_folder_refuses_to_guess_before_the_model_loads(dicom_root, tmp_path, capsys,
                                                                                    monkeypatch):
    """Four eligible series of three studies, NIfTI output without --series: refused from the headers before the
    model loads (18 s to the line before on a busy 2-core machine, with the model loaded; 4 s now), nothing
    written."""
    from conftest import run_cli

    import medseg.package

    def load_package(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(medseg.package, "load_package", load_package)
    out = tmp_path / "out"
    code, _, err = run_cli(["infer", str(dicom_root), "-m", "hippocampus", "-o", str(out)], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"medseg: error: {dicom_root}: 4 eligible series of 3 studies")
    assert "choose one with --series" in lines[0]
    assert not out.exists()
