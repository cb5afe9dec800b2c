"""Which outputs carry a DICOM input's patient identifiers (docs/dicom.md, *Patient data in outputs*): the DICOM SEG
alone, as DICOM requires of a SEG; not the NIfTI segmentation, sidecars, metrics, failure records, the QA report,
its cohort.tsv and summary.json, nor medseg's own lines."""

from __future__ import annotations

import pydicom
from conftest import run_cli
from dicom_factory import slice_positions, stored_values, write_series

# the patient's name, ID and birth date, and a study description naming the patient, as a PACS export holds them
PATIENT = {"PatientName": "Zyxwo^Quenby", "PatientID": "MRN8675309", "PatientBirthDate": "19410203",
           "StudyDescription": "HEAD Zyxwo", "AccessionNumber": "ACC55501"}
SAID = ("Zyxwo", "Quenby", "MRN8675309", "19410203", "ACC55501")


def _holding(folder, words=SAID) -> list[str]:
    """The files under ``folder`` whose bytes hold any of ``words``, those of a gzipped file (``.nii.gz``) read
    uncompressed: its compressed bytes hold none of them, whatever its header says."""
    import gzip

    def content(path):
        data = path.read_bytes()
        return gzip.decompress(data) if path.name.endswith(".gz") else data

    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()
                  and any(word.encode() in content(path) for word in words))


def test_only_the_dicom_seg_carries_the_patients_identifiers(tmp_path, capsys, tiny_package):
    values = stored_values((40, 36, 6), seed=3) + 900
    write_series(tmp_path / "scans" / "s1", values, slice_positions(6, 3.0), extra=PATIENT)
    results = tmp_path / "results"
    for out, extra in ((results / "nifti", []), (results / "seg", ["--format", "dicom-seg"])):
        code, out_text, err_text = run_cli(["infer", str(tmp_path / "scans" / "s1"), "-o", str(out), "--device", "cpu",
                                            "--model", str(tiny_package.path), *extra], capsys)
        assert code == 0
        assert not any(word in out_text + err_text for word in SAID)
    code, out_text, err_text = run_cli(["report", str(results), "-o", str(tmp_path / "qa") + "/"], capsys)
    assert code == 0 and not any(word in out_text + err_text for word in SAID)
    assert _holding(tmp_path / "qa") == []
    assert _holding(results) == ["seg/s1_seg.dcm"]
    seg = pydicom.dcmread(results / "seg" / "s1_seg.dcm")
    assert (str(seg.PatientName), seg.PatientID, seg.PatientBirthDate) == ("Zyxwo^Quenby", "MRN8675309", "19410203")
    # the sidecars name the series (its UID and description) and the input's path, which may name the patient
    assert sorted(path.name for path in results.rglob("*")) == ["nifti", "s1_seg.dcm", "s1_seg.json", "s1_seg.json",
                                                               "s1_seg.nii.gz", "seg"]


def test_a_nifti_inputs_header_text_and_extensions_are_not_copied(tmp_path, capsys, tiny_package):
    """A NIfTI input whose ``descrip``, ``aux_file`` and a header extension name the patient (as converters from
    DICOM may write them): neither the segmentation nor its sidecar or metrics holds them."""
    import nibabel as nib
    import numpy as np

    from medseg.synthetic import make_phantom

    phantom = make_phantom((40, 40, 8), seed=11)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    label = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.minimum(phantom.labels, 2), affine), label)  # the package has labels 1 and 2
    named = nib.Nifti1Image(phantom.image, affine)
    named.header["descrip"] = b"Zyxwo^Quenby MRN8675309"
    named.header["aux_file"] = b"Zyxwo"
    named.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"Zyxwo^Quenby 19410203 ACC55501"))
    scan = tmp_path / "scan.nii.gz"
    nib.save(named, scan)
    assert _holding(tmp_path, ("Zyxwo", "MRN8675309", "19410203", "ACC55501")) == ["scan.nii.gz"]
    out = tmp_path / "out"
    code, out_text, err_text = run_cli(["infer", str(scan), "-o", str(out), "--device", "cpu", "--model",
                                        str(tiny_package.path), "--reference", str(label)], capsys)
    assert code == 0 and not any(word in out_text + err_text for word in SAID)
    assert sorted(path.name for path in out.iterdir()) == ["scan_metrics.json", "scan_seg.json", "scan_seg.nii.gz"]
    assert _holding(out) == []
    written = nib.load(out / "scan_seg.nii.gz")
    assert (written.header["descrip"].tobytes().rstrip(b"\0"), list(written.header.extensions)) == (
        b"medseg segmentation", [])


def test_a_failure_record_of_a_dicom_case_carries_no_identifiers(tmp_path, capsys, tiny_package):
    """A cohort case that fails on a DICOM series (the series asked for is not there) writes a failure record, which
    names the series found by number and description, not the patient."""
    values = stored_values((40, 36, 6), seed=3) + 900
    write_series(tmp_path / "scans" / "s1", values, slice_positions(6, 3.0), extra=PATIENT)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\tseries\nd1\t{tmp_path / 'scans' / 's1'}\t99\n")
    results = tmp_path / "results"
    code, out_text, err_text = run_cli(["cohort", "infer", str(sheet), "-o", str(results), "--device", "cpu",
                                        "--model", str(tiny_package.path)], capsys)
    assert code == 0 and "d1: failed" in out_text + err_text
    assert not any(word in out_text + err_text for word in SAID)
    assert sorted(path.name for path in (results / "cases" / "d1").iterdir()) == ["d1_failed.json"]
    code, out_text, err_text = run_cli(["report", str(results), "-o", str(tmp_path / "qa") + "/"], capsys)
    assert code == 0
    assert _holding(results) == [] and _holding(tmp_path / "qa") == []
