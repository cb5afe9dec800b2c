"""Which outputs carry a DICOM input's patient identifiers (README, *Patient data in outputs*): the DICOM SEG
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
    """The files under ``folder`` whose bytes hold any of ``words``."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()
                  and any(word.encode() in path.read_bytes() for word in words))


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
