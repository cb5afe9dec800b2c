"""What a cohort run refuses or warns about while Snakemake plans it: bad settings, damaged packages, results
folders, sample sheets and references, paths with braces, and a clean ``snakemake --lint``."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from workflow_runs import (
    MODEL,
    SHAPE,
    SNAKEFILE,
    kept_by_its_job,
    made_beforehand,
    snakemake,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
    write_sheet,
)

from medseg.synthetic import write_phantom

BAD_SETTINGS = [
    ({"cases_per_job": 0}, "config cases_per_job: 0 is less than the minimum of 1"),
    ({"device": "gpu"}, "config device: 'gpu' does not match '^(auto|cpu|mps|cuda(:[0-9]+)?)$'"),
    ({"colour": "red"}, "config: unknown key 'colour'; the keys are samples, model, results"),
    ({"modle": "phantom"}, "config: unknown key 'modle' (did you mean 'model'?)"),
    # `cases_per_job=` with nothing after it: it read "None is not of type 'integer'"
    ({"cases_per_job": ""}, "config cases_per_job: no value given (cases_per_job= with nothing after it, or "
                            "null); it takes an integer"),
    # NaN passes every bound: the report crashed with a traceback after every case had run
    ({"dice_threshold": "nan"}, "config dice_threshold: nan is not a finite number"),
    ({"minutes_per_case": "inf"}, "config minutes_per_case: inf is not a finite number"),
    ({"ct_window": "liver"}, "config ct_window: 'liver' is not one of soft-tissue, bone, lung, brain, null"),
    ({"fail_on_failed_cases": "some"}, "config fail_on_failed_cases: 'some' is not one of all, any, never"),
]


@pytest.mark.parametrize(("setting", "message"), BAD_SETTINGS)
def test_bad_settings_are_refused_by_the_check_planning_runs_first(cohort, tmp_path, setting, message):
    """Each bad setting, read as Snakemake reads ``--config`` (its own parser, over configs/cohort.yaml), is refused
    by the check the Snakefile runs before anything else, in one line naming the key. That the Snakefile runs it and
    how a run ends on it (the line alone, no traceback, nothing written) is the next test's, one Snakemake run by
    default: a run a setting (a Snakemake start each) is among the slow tests."""
    import yaml
    from snakemake.cli import parse_config
    from workflow_runs import REPO

    from medseg.cohort.settings import check_config
    from medseg.errors import InputError

    _, sheet = cohort
    config = yaml.safe_load((REPO / "configs" / "cohort.yaml").read_text()) or {}
    given = {"model": MODEL, "samples": sheet, "results": tmp_path / "results", **setting}
    config.update(parse_config([f"{key}={value}" for key, value in given.items()]))
    with pytest.raises(InputError) as refused:
        check_config(config, REPO / "configs" / "schemas" / "config.schema.yaml")
    assert message in str(refused.value) and "\n" not in str(refused.value)


# one setting by default; each of the others is refused by the same check (the test above), their runs slow
@pytest.mark.parametrize(("setting", "message"), [BAD_SETTINGS[0]] + [pytest.param(*case, marks=pytest.mark.slow)
                                                                      for case in BAD_SETTINGS[1:]])
def test_bad_settings_are_refused_before_anything_runs(cohort, tmp_path, setting, message):
    """One line naming the key (not Snakemake's print of the whole schema, a hundred lines)."""
    folder, sheet = cohort
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results", **setting)
    assert run.returncode == 1
    assert message in run.stdout + run.stderr
    # medseg's one line: Snakemake framed it with the Snakefile's line and two traceback lines
    assert run.stderr.strip().splitlines()[-1].startswith("medseg: error: config")
    # and where the setting was made (the workflow's config, a --configfile or --config), which the line named not
    key = next(iter(setting))
    assert run.stderr.strip().splitlines()[-1].endswith(f"(set by --config {key}={setting[key]})")
    assert "Traceback" not in run.stderr and '  File "' not in run.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("damage", ["cut weights", "altered weights", "edited width"])
def test_a_package_with_damaged_weights_is_refused_at_planning(cohort, tmp_path, damage):
    """Planning read the package without its weights' hash, then without comparing the weights' shapes with its
    architecture: the run went on to the jobs, each failed three times (retried with more memory), and the one
    useful line was in a job log."""
    import shutil

    from medseg.package import load_package

    folder, sheet = cohort
    package = tmp_path / "model"
    shutil.copytree(load_package(MODEL, check_hash=False).path, package)
    weights = package / "weights.safetensors"
    if damage == "cut weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        expected = f"medseg: error: {weights}: cut short: "
    elif damage == "altered weights":  # whole, one byte of a tensor changed: only the hash tells
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        expected = f"medseg: error: {weights}: SHA-256 "
    else:  # the hash still holds: only the shapes tell
        config = json.loads((package / "model.json").read_text())
        config["architecture"]["base_width"] *= 2
        (package / "model.json").write_text(json.dumps(config))
        expected = f"medseg: error: {weights}: weights do not match the architecture in model.json ("
    run = snakemake(tmp_path, "--cores", "1", samples=sheet, results=tmp_path / "results", model=package)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(expected)
    assert not (tmp_path / "results" / "cases").exists()


def test_a_results_folder_that_is_a_file_is_one_line(cohort, tmp_path):
    folder, sheet = cohort
    (tmp_path / "afile").write_text("x")
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "afile")
    assert run.returncode != 0 and len((run.stdout + run.stderr).strip().splitlines()) < 10
    message = f"{tmp_path / 'afile'}: the results folder (config 'results') is a file; name a folder"
    assert message in run.stdout + run.stderr
    assert (tmp_path / "afile").read_text() == "x"


def test_a_second_run_on_one_results_folder_is_refused_from_any_working_folder(cohort, tmp_path):
    """Snakemake's lock is per working folder: two runs started from two folders on one results folder both went on
    (cases segmented twice, one run's job logs over the other's). A run holds the results folder now; a preview
    takes no claim and still plans."""
    from medseg.io.folder_claim import claim_path, claimed

    _, sheet = cohort
    results = tmp_path / "results"
    with claimed(results, "cohort run"):  # as a run started from another folder holds it
        run = snakemake(tmp_path / "elsewhere", "--cores", "2", samples=sheet, results=results)
        assert run.returncode == 1
        assert run.stderr.strip().splitlines()[-1] == (
            f"medseg: error: {results}: another cohort run is writing to this folder (pid {os.getpid()} on "
            f"{socket.gethostname()}, user {pwd.getpwuid(os.geteuid()).pw_name}, per {claim_path(results)}); wait "
            "for it to end or give another folder")
        preview = snakemake(tmp_path / "elsewhere", "-n", "--cores", "2", samples=sheet, results=results)
        assert preview.returncode == 0, preview.stderr[-3000:]
        # a preview that changes the folder (touching or deleting outputs) waits its turn like a run
        for writing in (("--touch",), ("--delete-all-output",)):
            touch = snakemake(tmp_path / "elsewhere", *writing, "--cores", "2", samples=sheet, results=results)
            assert touch.returncode == 1 and "another cohort run is writing to this folder" in touch.stderr, writing
    assert not (results / "cases").exists() and not claim_path(results).exists()


def test_braces_and_angle_brackets_in_paths_do_not_stop_the_run(tmp_path):
    """Snakemake reads a brace in a path as a wildcard and <name> as a path variable: an image named so, or a sheet
    in a folder named so, stopped the whole cohort while planning with a Snakemake error naming neither the sheet
    nor the line. Such files are legal on Linux; now the cases run, and a results folder named so is refused in one
    line before anything runs. (The cases are segmented beforehand, in this process, from the braced paths: the run's
    jobs read them all the same, its inference job keeping the cases without importing torch and MONAI.)"""
    data = tmp_path / "study {2024}"
    data.mkdir()
    names = {"braced": "a{b}.nii.gz", "angled": "c<i>.nii.gz"}
    for seed, name in enumerate(names.values()):
        write_phantom(data / name, data / f"{seed}<{{label}}>.nii.gz", shape=SHAPE, seed=seed)
    sheet = write_sheet(data, [(case, name, f"{seed}<{{label}}>.nii.gz")
                               for seed, (case, name) in enumerate(names.items())])
    results = tmp_path / "results"
    made_beforehand(sheet, results)
    # both cases in one job: the paths reach Snakemake as the job's inputs all the same, with half the jobs
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert kept_by_its_job(results)
    assert "2 cases (0 failed, " in run.stdout + run.stderr
    for case in names:
        assert nib.load(results / "cases" / case / f"{case}_seg.nii.gz").shape == SHAPE
        assert json.loads((results / "cases" / case / f"{case}_metrics.json").read_text())["case_id"] == case
    again = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    _refuses_the_results_folder(tmp_path, sheet, "o{u}t", "'{' '}'")


def _refuses_the_results_folder(tmp_path, sheet, odd: str, shown: str) -> None:
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / odd)
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1] == (
        f"medseg: error: {tmp_path / odd}: the results folder (config 'results') has {shown} in its path, which "
        "Snakemake reads as a wildcard or path variable; choose a folder without them")
    assert not (tmp_path / odd).exists()


@pytest.mark.slow  # in-process by default, with its whole message: test_cohort_settings.py's
# test_a_results_folder_with_braces_or_angle_brackets_is_refused_in_one_line
def test_a_results_folder_with_angle_brackets_is_refused_before_anything_runs(tmp_path):
    """As one with braces (the test above): <name> is a path variable to Snakemake."""
    _refuses_the_results_folder(tmp_path, write_sheet(tmp_path, [("a", "a.nii.gz", "")]), "o<u>t", "'<' '>'")


def test_bad_sample_sheets_are_refused(tmp_path):
    sheet = write_sheet(tmp_path, [("a", "a.nii.gz", ""), ("A", "b.nii.gz", "")])
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1] == (
        f"medseg: error: {sheet}:3: case_id 'A' repeats line 2 (case_ids must be unique, ignoring letter case)")
    assert '  File "' not in run.stderr
    sheet = write_sheet(tmp_path, [("a", "nowhere/a.nii.gz", "")])
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode != 0 and "samples.tsv: its one image is not here (paths" in run.stdout + run.stderr


@pytest.mark.slow  # in-process by default: test_samples.py's test_bad_sheets_are_refused_with_the_line (case_id 'a b'
# refused with these words, beside 'a/b', '-a' and 'pätient')
def test_a_case_id_with_a_space_is_refused_while_planning(tmp_path):
    sheet = write_sheet(tmp_path, [("a b", "a.nii.gz", "")])
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode != 0 and "samples.tsv:2: case_id 'a b' must be 1-128 ASCII letters" in run.stdout + run.stderr


def test_a_workflow_settings_file_that_is_not_valid_yaml_is_one_line(tmp_path):
    """configs/cohort.yaml edited with a tab: Snakemake's words were "Config file is not valid JSON or YAML",
    naming neither the file nor the line."""
    import shutil

    from workflow_runs import REPO

    copy = tmp_path / "checkout"
    shutil.copytree(REPO / "workflow", copy / "workflow")
    shutil.copytree(REPO / "configs", copy / "configs")
    shutil.copy(SNAKEFILE, copy / "Snakefile")
    settings = copy / "configs" / "cohort.yaml"
    settings.write_text(settings.read_text() + "extra:\n\t- a\n")
    lines = settings.read_text().count("\n")
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "--directory",
                          str(tmp_path), "-n", "--cores", "1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"medseg: error: {settings}: not valid YAML at line {lines}, column 1: a tab indents the line; YAML indents "
        "with spaces only")


def test_a_checkout_without_its_settings_file_runs_on_a_configfile(tmp_path):
    """Without configs/cohort.yaml Snakemake reads the settings from --configfile alone; its YAML check refused the
    run ("cannot read the workflow's settings (No such file or directory)")."""
    import shutil

    from workflow_runs import REPO

    copy = tmp_path / "checkout"
    shutil.copytree(REPO / "workflow", copy / "workflow")
    shutil.copytree(REPO / "configs", copy / "configs")
    shutil.copy(SNAKEFILE, copy / "Snakefile")
    settings = tmp_path / "my.yaml"
    (copy / "configs" / "cohort.yaml").rename(settings)
    image = nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4))
    nib.save(image, tmp_path / "a.nii.gz")
    sheet = write_sheet(tmp_path, [("a", "a.nii.gz", "")])
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "--directory",
                          str(tmp_path), "-n", "--cores", "1", "--configfile", str(settings), "--config",
                          f"samples={sheet}", f"results={tmp_path / 'results'}"], capture_output=True, text=True,
                         timeout=300)
    assert "cannot read the workflow's settings" not in run.stderr
    assert run.returncode == 0, run.stderr
    assert "infer " in run.stdout + run.stderr


def test_a_row_naming_a_further_channel_file_is_warned_of_while_planning(tmp_path, make_package):
    """A multi-modal model's row naming case_0001.nii.gz (not its case's case_0000.nii.gz, docs/models.md "Multi-modal
    models") was planned without a word and failed only as its job read it; planning now names its line and file,
    and the other rows run. A model of one image a case reads case_0001.nii.gz as a case of its own."""
    from medseg.cohort.records import further_channel_rows
    from medseg.cohort.samples import read_samples

    image = nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    for name in ("a_0000", "a_0001", "b_0000", "b_0001", "c_0001"):  # no c_0000: c_0001 is an image of its own
        nib.save(image, tmp_path / f"{name}.nii.gz")
    sheet = write_sheet(tmp_path, [("a", "a_0000.nii.gz", ""), ("b", "b_0001.nii.gz", ""),
                                   ("c", "c_0001.nii.gz", "")])
    expected = (f"1 of 3 cases names a channel file other than its case's first (_0000) as the image; this case "
                f"fails as bad input, the others run: {sheet}:3: {tmp_path / 'b_0001.nii.gz'}: channel 1 of case b "
                f"(nnU-Net's channel files); give {tmp_path / 'b_0000.nii.gz'}: the case's other channel files are "
                "read beside it")
    samples = read_samples(sheet)
    assert further_channel_rows(samples, 2, sheet) == expected
    assert further_channel_rows(samples, 1, sheet) is None
    architecture = {"type": "unet2d", "in_channels": 2, "n_classes": 4, "base_width": 4, "depth": 2, "dropout": 0.0,
                    "norm": "batch"}
    package = make_package("mm", modalities=["t1", "t2"], architecture=architecture)
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results", model=package)
    assert run.returncode == 0, run.stderr
    assert expected in (run.stdout + run.stderr).splitlines()
    assert "infer " in run.stdout + run.stderr


def test_a_row_naming_a_case_0000_of_several_channels_is_warned_of_for_a_model_of_one_image(tmp_path, make_package):
    """A sheet of nnU-Net's _0000 files of a set of several channels, run with a model of one image a case, was
    planned and segmented in silence from each case's first channel, its case_0001 unread (`medseg infer` warns of
    it); planning now names the rows, as it names a multi-modal model's rows of case_0001."""
    from medseg.cohort.records import unread_channel_rows
    from medseg.cohort.samples import read_samples

    image = nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.diag([1.0, 1.0, 2.0, 1.0]))
    for name in ("a_0000", "a_0001", "b_0000", "c_0000", "c_0001"):  # b_0000 has no channel beside it: not told
        nib.save(image, tmp_path / f"{name}.nii.gz")
    sheet = write_sheet(tmp_path, [("a", "a_0000.nii.gz", ""), ("b", "b_0000.nii.gz", ""),
                                   ("c", "c_0000.nii.gz", "")])
    expected = (f"2 of 3 cases name the _0000 file of a case of several channels as nnU-Net names them, and model "
                f"tiny takes one image a case: each is segmented from its _0000 file alone, its other channels "
                f"unread: {sheet}:2: {tmp_path / 'a_0000.nii.gz'} (a_0001.nii.gz beside it); {sheet}:4: "
                f"{tmp_path / 'c_0000.nii.gz'} (c_0001.nii.gz beside it)")
    samples = read_samples(sheet)
    assert unread_channel_rows(samples, 1, "tiny", sheet) == expected
    assert unread_channel_rows(samples, 2, "tiny", sheet) is None  # a multi-modal model reads them
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results", model=make_package())
    assert run.returncode == 0, run.stderr
    assert expected in (run.stdout + run.stderr).splitlines()


def test_a_case_0000_whose_case_0001_is_a_row_of_its_own_is_not_said_to_leave_it_unread(tmp_path):
    """A sheet whose rows name both a_0000 and a_0001 (each a case for a model of one image a case, as `medseg infer`
    given both reads each) was told that a_0001 was left unread: each row was looked at alone, as if the sheet named
    no other file. Only a row whose case_0001 no row names is told of."""
    from medseg.cohort.records import unread_channel_rows
    from medseg.cohort.samples import read_samples

    image = nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4))
    for name in ("a_0000", "a_0001", "c_0000", "c_0001"):
        nib.save(image, tmp_path / f"{name}.nii.gz")
    sheet = write_sheet(tmp_path, [("a", "a_0000.nii.gz", ""), ("a1", "a_0001.nii.gz", ""),
                                   ("c", "c_0000.nii.gz", "")])
    samples = read_samples(sheet)
    assert unread_channel_rows(samples, 1, "tiny", sheet) == (
        f"1 of 3 cases names the _0000 file of a case of several channels as nnU-Net names them, and model tiny "
        f"takes one image a case: each is segmented from its _0000 file alone, its other channels unread: {sheet}:4: "
        f"{tmp_path / 'c_0000.nii.gz'} (c_0001.nii.gz beside it)")
    assert unread_channel_rows(samples[:2], 1, "tiny", sheet) is None


def test_a_dicom_folder_named_with_a_compression_suffix_is_not_warned_of_while_planning(tmp_path):
    """A DICOM folder named as an archive (``study.zip``, unpacked in its place) is read as any folder: planning
    warned that its case would fail as "a ZIP archive (.zip), which medseg does not read"."""
    from medseg.cohort.records import unread_compressions
    from medseg.cohort.samples import read_samples

    (tmp_path / "study.zip").mkdir()
    (tmp_path / "study.zip" / "IM000001").write_bytes(b"\0" * 128 + b"DICM")
    (tmp_path / "r.nii.xz").write_bytes(b"\0" * 64)
    sheet = write_sheet(tmp_path, [("dicom", "study.zip", ""), ("xz", "study.zip", "r.nii.xz")])
    assert [case for case, _ in unread_compressions(read_samples(sheet))] == ["xz"]


def test_cases_in_a_compression_medseg_does_not_read_are_warned_of_while_planning(tmp_path, monkeypatch):
    """A .nii.xz image (or reference) was planned as an input of no voxels without a word, and failed in its job as
    "not a NIfTI image (Cannot work out file type …)"; planning now names the cases as bad input, the others run."""
    from medseg.cohort.records import unread_compressions
    from medseg.cohort.samples import read_samples
    from medseg.io import compression

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    for name in ("x.nii.xz", "r.nii.lz4", "z.nii.zst"):
        (tmp_path / name).write_bytes(b"\0" * 64)
    sheet = write_sheet(tmp_path, [("ok", "a.nii.gz", ""), ("x", "x.nii.xz", ""), ("r", "a.nii.gz", "r.nii.lz4"),
                                   ("z", "z.nii.zst", "")])
    read = ("undo it ({}) or give one of .nii, .nii.gz, .nii.bz2, .nii.zst (with zstd), .hdr/.img (and .gz), .nrrd, "
            ".nhdr, .mha, .mhd, or a DICOM folder")

    samples = read_samples(sheet)
    zstd_here = compression.zstd_available()
    monkeypatch.setattr(compression, "zstd_available", lambda: False)
    assert unread_compressions(samples) == [
        ("x", f"{tmp_path / 'x.nii.xz'}: xz-compressed (.xz), which medseg does not read; "
              + read.format("xz -d x.nii.xz")),
        ("r", f"{tmp_path / 'r.nii.lz4'}: LZ4-compressed (.lz4), which medseg does not read; "
              + read.format("lz4 -d r.nii.lz4")),
        ("z", f"{tmp_path / 'z.nii.zst'}: zstd-compressed (.zst), which this Python cannot read (it has no zstd: "
              "install the backports.zstd package, or use Python 3.14); " + read.format("zstd -d z.nii.zst"))]
    monkeypatch.setattr(compression, "zstd_available", lambda: True)  # nibabel reads it then
    assert [case for case, _ in unread_compressions(samples)] == ["x", "r"]
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode == 0, run.stderr
    cases = ["x", "r"] if zstd_here else ["x", "r", "z"]  # the workflow's own Python decides for the .zst
    assert (f"{len(cases)} of 4 cases name a file in a compression medseg does not read; these cases fail as bad "
            f"input, the others run: {', '.join(cases)} (e.g. {tmp_path / 'x.nii.xz'}: xz-compressed (.xz), which "
            f"medseg does not read; {read.format('xz -d x.nii.xz')})") in run.stdout + run.stderr
    assert "infer" in run.stdout  # the others planned to run


def test_a_sheet_whose_images_all_exist_but_are_away_is_not_told_they_do_not_exist(tmp_path):
    """Every image of the sheet away while it exists (an emptied DICOM folder, a share's mount point not mounted):
    the error began 'none of the 2 images exists', untrue of folders that are there."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    sheet = write_sheet(tmp_path, [("a", "a", ""), ("b", "b", "")])
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1] == (
        f"medseg: error: {sheet}: none of the 2 images is here (paths in a sample sheet are relative to the sheet's "
        "folder; an empty folder, or one some of whose files are not here, counts as missing), e.g. "
        f"{tmp_path / 'a'}")
    assert not (tmp_path / "results").exists()


def test_lint_is_clean(cohort, tmp_path):
    _, sheet = cohort
    run = snakemake(tmp_path, "--lint", samples=sheet, results=tmp_path / "results")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Lints for" not in run.stdout + run.stderr
    assert "Congratulations, your workflow is in a good condition!" in run.stderr


def test_missing_references_are_named_at_planning(tmp_path):
    """A missing image was warned about before any job ran, a missing reference only showed as a scoring failure
    at the end."""
    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", data / "a_label.nii.gz", shape=SHAPE, seed=1)
    write_phantom(data / "b.nii.gz", None, shape=SHAPE, seed=2)
    sheet = write_sheet(data, [("a", "a.nii.gz", "a_label.nii.gz"), ("b", "b.nii.gz", "b_label.nii.gz")])
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode == 0, run.stderr[-3000:]
    assert ("1 reference not found; this case will be segmented, and its scoring fails (scores made earlier "
            "against the same file are kept): b") in run.stderr + run.stdout


@pytest.fixture(scope="module")
def planned_runs(cohort, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Three dry runs (``-n -p --forceall``), by the settings given: the overlap as null, NULL and 0.5, and the CT
    window as bone, null and not given, two settings a run (a Snakemake start each, not one a setting)."""
    _, sheet = cohort
    runs = {}
    for name, settings in (("overlap null, ct_window bone", {"overlap": "null", "ct_window": "bone"}),
                           ("overlap NULL, ct_window null", {"overlap": "NULL", "ct_window": "null"}),
                           ("overlap 0.5", {"overlap": "0.5"})):
        workdir = tmp_path_factory.mktemp("planned")
        run = snakemake(workdir, "-n", "-p", "--forceall", samples=sheet, results=workdir / "results", **settings)
        assert run.returncode == 0, run.stderr[-3000:]
        runs[name] = run
    return runs


@pytest.fixture(scope="module")
def planned_commands(planned_runs) -> dict[str, str]:
    """What the three dry runs printed on stdout (their jobs' commands), by the settings given."""
    return {name: run.stdout for name, run in planned_runs.items()}


def test_a_null_setting_can_be_given_on_the_command_line(planned_commands):
    """Snakemake passes overlap=null as the text 'null'; it was refused ("'null' is not of type 'number',
    'null'"), so the model's own overlap could not be restored from the command line."""
    commands = {value: [line for line in planned_commands[name].splitlines() if "cohort infer" in line]
                for value, name in (("null", "overlap null, ct_window bone"), ("NULL", "overlap NULL, ct_window null"),
                                    ("0.5", "overlap 0.5"))}
    assert commands["null"] and not any("--overlap" in line for line in commands["null"] + commands["NULL"])
    assert commands["0.5"] and all("--overlap 0.5" in line for line in commands["0.5"])


def test_planning_a_cohort_does_not_import_torch(cohort, tmp_path):
    """Every Snakemake call plans the cohort (a preview, each run, each cluster job parsing the Snakefile); checking
    the model package there imported torch through one arithmetic helper, 2-3 s of each call; writing the records
    imported nibabel (0.1-0.2 s of each call, through ``medseg.io``'s image readers)."""
    _, sheet = cohort
    command = [sys.executable, "-X", "importtime", "-m", "snakemake", "-s", str(SNAKEFILE), "--directory",
               str(tmp_path), "-n", "--config", f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'r'}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "medseg.package" in imported and "medseg.cohort" in imported
    assert not {"torch", "monai", "nibabel"} & imported


def test_the_default_model_is_the_shipped_one_whatever_the_working_folder_holds(cohort, tmp_path):
    """`medseg train -o phantom` in the working folder: a run without model= took that package while saying "the
    shipped demo model"; as `medseg infer` without --model, it is the shipped one. Named, the folder is taken, with a
    warning (once, not in every job), and not again as a package calling itself by a shipped name (the folder, the
    shipped phantom with a label renamed, calls itself 'phantom': named by that name, it is the package meant)."""
    import json
    import shutil

    from medseg.package import load_package

    _, sheet = cohort
    shutil.copytree(load_package("phantom").path, tmp_path / "phantom")
    config = json.loads((tmp_path / "phantom" / "model.json").read_text())
    config["labels"]["3"] = "pipe"  # another package (an edited model.json) of the shipped model's name
    (tmp_path / "phantom" / "model.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "-n",
               "--cores", "1", "--config", f"samples={sheet}", f"results={tmp_path / 'results'}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    said = run.stdout + run.stderr
    assert run.returncode == 0, said[-2000:]
    assert "model phantom: the shipped demo model" in said and "the package folder" not in said
    run = subprocess.run([*command, "model=phantom"], capture_output=True, text=True, timeout=300)
    said = run.stdout + run.stderr
    assert run.returncode == 0, said[-2000:]
    assert said.count(f"phantom: the package folder {tmp_path / 'phantom'}, not the shipped model of that name") == 1
    assert "the shipped demo model" not in said and "calls itself" not in said


def test_a_package_calling_itself_by_a_shipped_name_is_warned_about_while_planning(tmp_path, make_package):
    """`medseg infer` warns about it; a cohort run named it by that name without a word."""
    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", shape=SHAPE, seed=1)
    sheet = write_sheet(data, [("a", "a.nii.gz", "")])
    mine = make_package("phantom")  # another package, named as the shipped demo model
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results", model=mine)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (f"{mine} calls itself 'phantom', as a model shipped with medseg, but is another package"
            in run.stderr + run.stdout)


def test_the_shipped_model_named_is_not_warned_about_while_planning(planned_runs):
    """model=phantom, the shipped model itself: planning says nothing of a package calling itself by a shipped name
    (the test above's other half, on the module's dry runs: a Snakemake start fewer)."""
    if MODEL != "phantom":
        pytest.skip("the module's dry runs name another model (MEDSEG_TEST_MODEL)")
    for name, run in planned_runs.items():
        assert "calls itself" not in run.stderr + run.stdout, name


def test_a_dataset_json_naming_the_labels_otherwise_than_the_model_is_warned_of_while_planning(tmp_path):
    """A cohort made from a dataset folder (a sheet of labelsTr/ references, docs/infer.md "Coming from nnU-Net")
    scores each label by value under the model's name, as `medseg evaluate` does; a dataset.json there naming the
    values otherwise (another labelling convention) was warned about by `medseg evaluate` and `medseg infer
    --reference`, but the cohort scored its cases without a word. Planning names it, once for the sheet."""
    dataset = tmp_path / "Task09"
    (dataset / "imagesTr").mkdir(parents=True)
    (dataset / "labelsTr").mkdir()
    for seed, case in enumerate(("a", "b"), start=11):
        write_phantom(dataset / "imagesTr" / f"{case}.nii.gz", dataset / "labelsTr" / f"{case}.nii.gz", SHAPE,
                      seed=seed)
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "Tube", "2": "Box",
                                                                 "3": "Ellipsoid"}}))
    sheet = write_sheet(dataset, [("a", "imagesTr/a.nii.gz", "labelsTr/a.nii.gz"),
                                  ("b", "imagesTr/b.nii.gz", "labelsTr/b.nii.gz")])
    warning = (f"{dataset / 'dataset.json'} names labels 1 Tube, 3 Ellipsoid; the model phantom names them "
               "1 ellipsoid, 3 tube: each label is scored by its value under the model's name; check that the "
               "reference uses the model's label values")
    run = snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")
    assert run.returncode == 0, run.stderr
    assert [line for line in (run.stdout + run.stderr).splitlines() if "dataset.json" in line] == [warning]
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "Ellipsoid": 1, "box": 2,
                                                                 "tube": 3}}))
    import logging

    from medseg.cohort.records import dataset_names_differ
    from medseg.cohort.samples import read_samples
    from medseg.package import load_package

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("medseg").addHandler(handler)
    try:
        dataset_names_differ(read_samples(sheet), load_package(MODEL))
    finally:
        logging.getLogger("medseg").removeHandler(handler)
    assert records == []


@pytest.mark.parametrize(("run", "expected"), [("overlap 0.5", None),
                                               ("overlap null, ct_window bone", "--ct-window bone"),
                                               # the YAML file's null (the default), on the command line: it was
                                               # refused, "config ct_window: 'null' is not one of [..., None]"
                                               ("overlap NULL, ct_window null", None)],
                         ids=["not given", "bone", "null"])
def test_the_report_step_draws_ct_in_the_configured_window(planned_commands, run, expected):
    """The config's ct_window reaches `medseg report`; where the config leaves it out none is given (the report then
    takes the window the model declares, else soft-tissue, and warns of no image that is not a CT)."""
    report = [line for line in planned_commands[run].splitlines() if " report " in line and "--max-overlays" in line]
    assert len(report) == 1 and (expected in report[0] if expected else "--ct-window" not in report[0]), report
