"""Input paths that lead to no readable file, each named in one line: missing files, links that lead nowhere,
unreadable files and folders, macOS resource forks (medseg.io.files)."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from conftest import _files, medseg_as_plain_user, run_cli

from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_missing_file_is_one_line_exit_1(tmp_path, make_package, capsys):
    code, out, err = run(["infer", str(tmp_path / "nope.nii.gz"), "--model", str(make_package())], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == f"medseg: error: {tmp_path / 'nope.nii.gz'}: no such file or folder"
    assert "Traceback" not in err


def test_a_macos_resource_fork_file_is_named_for_what_it_is(tmp_path, make_package, capsys):
    """The Decathlon's tarballs hold a ``._case.nii.gz`` (AppleDouble) beside each image; given to infer or evaluate
    it was "not a NIfTI image (named .gz but not gzip-compressed, …)", which did not say what the file is."""
    fork = tmp_path / "._case.nii.gz"
    fork.write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64))
    expected = (f"{fork}: a macOS resource-fork file (AppleDouble, the '._' companion of case.nii.gz that a Mac "
                "writes and the Decathlon's tarballs hold), not an image; leave the ._ files out")
    code, _, err = run(["infer", str(fork), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == f"medseg: error: {expected}"
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []
    label = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), label)
    code, _, err = run(["evaluate", str(label), str(fork)], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == f"medseg: error: {expected}"
    fork.write_text("notes\n")  # a hidden file of other content is not called one
    code, _, err = run(["evaluate", str(label), str(fork)], capsys)
    assert code == 1 and "resource-fork" not in err and "not a NIfTI image" in err


def test_links_that_lead_nowhere_are_named_as_links(tmp_path, case, make_package, capsys):
    """A loop of links ended the batch in a traceback (Path.resolve raises on loops); a link whose target was moved
    was "no such file or folder" beside the link the user can see."""
    loop, dangling = tmp_path / "loop.nii.gz", tmp_path / "moved.nii.gz"
    loop.symlink_to(loop.name)
    dangling.symlink_to(tmp_path / "elsewhere" / "scan.nii.gz")
    nowhere = "that leads nowhere (its target moved or deleted, or a loop of links)"
    code, _, err = run(["infer", str(loop), str(dangling), str(case), "--model", str(make_package()),
                        "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("medseg: error: ")]
    assert errors == [f"medseg: error: {loop}: a link to loop.nii.gz {nowhere}",
                      f"medseg: error: {dangling}: a link to {tmp_path / 'elsewhere' / 'scan.nii.gz'} {nowhere}"]
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", "loop_failed.json", "moved_failed.json"]
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", str(tmp_path / "out2"),
                        "--reference", str(dangling)], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {dangling}: a link to {tmp_path / 'elsewhere' / 'scan.nii.gz'} {nowhere} (the reference "
        f"given for {case})")


def test_a_loop_of_links_is_one_line_in_every_command(tmp_path, capsys):
    """A loop of links given to evaluate (as prediction, reference, or the folder of -o / --output-dir), to synth as
    --label or to train as -o ended in a RuntimeError traceback: Path.resolve raises on loops before Python 3.13,
    where infer's reader named the link. Each is one line now, exit 1 (2 for an output folder through the loop, a
    usage error as infer's -o), and nothing is written."""
    from training_factory import write_set

    loop, folder = tmp_path / "loop.nii.gz", tmp_path / "loopdir"
    loop.symlink_to(loop.name)
    folder.symlink_to(folder.name)
    label = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((16, 16, 8), seed=3).labels.astype(np.uint8), np.eye(4)), str(label))
    shutil.copy(label, label.with_name("b.nii.gz"))
    nowhere = f"medseg: error: {loop}: a link to loop.nii.gz that leads nowhere"
    # an output folder through the loop is a usage error (exit 2), as infer's -o is
    through = f"{folder} is a symbolic link to loopdir, a loop of links that leads nowhere"
    for argv, code_expected, expected in (
            (["evaluate", str(label), str(loop)], 1, nowhere),
            (["evaluate", str(loop), str(label)], 1, nowhere),
            (["evaluate", str(label), str(label.with_name("b.nii.gz")), "-o", str(folder / "x.json")], 2,
             f"medseg evaluate: error: -o {folder / 'x.json'}: {through}"),
            (["evaluate", str(label), str(label.with_name("b.nii.gz")), "--output-dir", str(folder)], 2,
             f"medseg evaluate: error: --output-dir {folder}/: {through}"),
            (["synth", str(tmp_path / "s.nii.gz"), "--label", str(loop), "--shape", "8", "8", "8"], 1, nowhere)):
        code, _, err = run(argv, capsys)
        assert (code, len(err.strip().splitlines())) == (code_expected, 1), err
        assert err.startswith(expected), err
    images, labels = write_set(tmp_path / "set", count=2)
    code, _, err = run(["train", "--images", str(images), "--labels", str(labels), "-o", str(loop), "--epochs", "1"],
                       capsys)
    assert code == 2 and err.strip().splitlines() == [  # was "cannot write the output folder here (file exists)"
        f"medseg train: error: -o {loop}: {loop} is a symbolic link to loop.nii.gz, a loop of links that leads "
        "nowhere; restore its target or remove the link, or give another folder for the outputs. Try 'medseg train "
        "--help'."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "b.nii.gz", "loop.nii.gz", "loopdir", "set"]


def test_an_unreadable_input_or_reference_fails_alone(tmp_path, case, make_package, capsys):
    """Permission denied on one input or reference stopped the whole batch with click's usage error (exit 2,
    nothing segmented); it is that case's error now, in the reader's words, and the other cases are done."""
    package = make_package()
    label = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    for name in ("a", "b", "c"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 2.0, 1.0])), str(tmp_path / f"{name}_label.nii.gz"))
    (tmp_path / "b.nii.gz").chmod(0)
    (tmp_path / "c_label.nii.gz").chmod(0)
    command = ["infer", "--model", str(package), "-o", str(tmp_path / "out")]
    for name in ("a", "b", "c"):
        command += [str(tmp_path / f"{name}.nii.gz"), "--reference", str(tmp_path / f"{name}_label.nii.gz")]
    run = medseg_as_plain_user(command, capsys)
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("medseg: error:")]
    assert errors == [f"medseg: error: {tmp_path / 'b.nii.gz'}: cannot read (permission denied)",
                      f"medseg: error: {tmp_path / 'c_label.nii.gz'}: cannot read (permission denied)"]
    assert _files(tmp_path / "out") == ["a_metrics.json", "a_seg.json", "a_seg.nii.gz", "b_failed.json",
                                        "c_failed.json"]


def test_an_unreadable_img_of_a_pair_is_named(tmp_path, make_package, capsys):
    """The .img of an Analyze/NIfTI pair without read permission was reported as "truncated or corrupt image data"."""
    nib.save(nib.Nifti1Pair(make_phantom((40, 40, 8), seed=2).image, np.eye(4)), str(tmp_path / "pair.hdr"))
    (tmp_path / "pair.img").chmod(0)
    command = ["infer", str(tmp_path / "pair.hdr"), "--model", str(make_package()), "-o", str(tmp_path / "out")]
    run = medseg_as_plain_user(command, capsys)
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (f"medseg: error: {tmp_path / 'pair.hdr'}: cannot read the data "
                                                   "file pair.img (permission denied)")
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_an_input_behind_a_folder_that_cannot_be_searched_or_with_an_unreadable_companion_fails_alone(
        tmp_path, case, make_package, capsys):
    """An input inside a folder without search permission ended in a traceback (Path.exists raised), and the
    unreadable header of an .img, or .img.gz of a .hdr.gz, read as "not a NIfTI image" or as an unreadable header."""
    image = make_phantom((40, 40, 8), seed=2).image
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    shutil.copy(case, hidden / "x.nii.gz")
    for name in ("p.hdr", "q.hdr.gz"):
        nib.save(nib.Nifti1Pair(image, np.eye(4)), str(tmp_path / name))
    (tmp_path / "p.hdr").chmod(0)
    (tmp_path / "q.img.gz").chmod(0)
    hidden.chmod(0o600)  # listed, not searched
    try:
        command = ["infer", str(hidden / "x.nii.gz"), str(tmp_path / "p.img"), str(tmp_path / "q.hdr.gz"), str(case),
                   "--model", str(make_package()), "-o", str(tmp_path / "out")]
        run = medseg_as_plain_user(command, capsys)
    finally:
        hidden.chmod(0o700)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("medseg: error:")]
    assert errors == [
        f"medseg: error: {hidden / 'x.nii.gz'}: cannot read (permission denied: a folder on its way cannot be "
        "searched)",
        f"medseg: error: {tmp_path / 'p.img'}: cannot read the header p.hdr (permission denied)",
        f"medseg: error: {tmp_path / 'q.hdr.gz'}: cannot read the data file q.img.gz (permission denied)"]
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", "p_failed.json", "q_failed.json",
                                        "x_failed.json"]


def test_evaluate_train_and_inspect_name_a_path_behind_a_folder_that_cannot_be_searched(tmp_path, case, capsys):
    """`evaluate` and `train` gave a PermissionError traceback for a file or folder inside a folder without search
    permission (infer named it in one line); so did `inspect`, for a file and for a folder of DICOM files alike,
    `evaluate` for a folder of predictions there, `report` for a results folder there and `infer` for a model
    package folder there."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    label = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 2.0, 1.0])), str(tmp_path / "label.nii.gz"))
    shutil.copy(tmp_path / "label.nii.gz", hidden / "ref.nii.gz")
    hidden.chmod(0o600)
    expected = "cannot read (permission denied: a folder on its way cannot be searched)"
    try:
        for args, named in ((["evaluate", str(tmp_path / "label.nii.gz"), str(hidden / "ref.nii.gz")],
                             hidden / "ref.nii.gz"),
                            (["train", "--images", str(hidden / "im"), "--labels", str(hidden / "lb"), "-o",
                              str(tmp_path / "m")], hidden / "lb"),
                            (["inspect", str(hidden / "ref.nii.gz")], hidden / "ref.nii.gz"),
                            (["inspect", str(hidden / "study")], hidden / "study"),
                            (["evaluate", str(hidden / "preds"), str(tmp_path)], hidden / "preds"),
                            (["report", str(hidden / "results"), "-o", f"{tmp_path / 'qa'}/"], hidden / "results"),
                            (["infer", str(case), "--model", str(hidden / "model"), "-o", str(tmp_path / "out")],
                             hidden / "model")):
            run = medseg_as_plain_user(args, capsys)
            assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
            assert run.stderr.strip().splitlines()[-1] == f"medseg: error: {named}: {expected}"
    finally:
        hidden.chmod(0o700)


def test_a_sample_sheet_behind_a_folder_that_cannot_be_searched_reads_as_the_images_there_do(tmp_path, capsys):
    """A sample sheet in a folder without search permission read "cannot read the sample sheet (permission denied)",
    as a sheet this user may not read does, where the images of that folder read "cannot read (permission denied: a
    folder on its way cannot be searched)": the user looked at the file's mode, not at its folder's."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "samples.tsv").write_text("case_id\timage\na\ta.nii.gz\n")
    (tmp_path / "results").mkdir()
    hidden.chmod(0o600)
    try:
        run = medseg_as_plain_user(["report", str(tmp_path / "results"), "--sheet", str(hidden / "samples.tsv")],
                                   capsys)
    finally:
        hidden.chmod(0o700)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        f"medseg: error: {hidden / 'samples.tsv'}: cannot read the sample sheet (permission denied: a folder on its "
        "way cannot be searched)")


def test_a_types_name_takes_the_article_it_is_read_with():
    """The errors about an argument of the wrong type said "a ndarray" and "an uint8": the article went by the first
    letter, not by how the name is read (en-dee-array, you-int)."""
    from medseg.io.files import type_text, with_article

    names = ["ndarray", "Nifti1Image", "NoneType", "int", "object", "str", "float", "list", "uint8", "MGHImage",
             "MetaTensor", "HTMLParser", "memmap", "mmap", "xarray", "slice", "Volume"]
    assert [with_article(name) for name in names] == [
        "an ndarray", "a Nifti1Image", "a NoneType", "an int", "an object", "a str", "a float", "a list", "a uint8",
        "an MGHImage", "a MetaTensor", "an HTMLParser", "a memmap", "an mmap", "an xarray", "a slice", "a Volume"]
    assert (type_text(np.zeros(2)), type_text(np.uint8(1)), type_text(None)) == ("an ndarray", "a uint8", "a NoneType")


def test_unread_channels_are_those_of_files_not_of_dicom_folders(tmp_path):
    """A case_0000 file whose case_0001 is beside it and not given is a case of several channels read in part; DICOM
    series folders numbered as nnU-Net numbers channels (series_0000/, series_0001/) are series of their own."""
    from medseg.io.files import unread_channels

    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "c_0000.nii", "c_0001.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "series_0000").mkdir()
    (tmp_path / "series_0001").mkdir()
    given = [tmp_path / name for name in ("a_0000.nii.gz", "b_0000.nii.gz", "c_0000.nii", "series_0000")]
    assert unread_channels(given) == [(tmp_path / "a_0000.nii.gz", tmp_path / "a_0001.nii.gz")]
    assert unread_channels([*given, tmp_path / "a_0001.nii.gz"]) == []  # given: a case of its own, told otherwise


def test_channel_files_given_in_two_forms_of_path_are_known_for_one_case(tmp_path, monkeypatch):
    """``data/a_0000.nii.gz`` given beside ``/…/data/a_0001.nii.gz`` (a relative and an absolute path, as a shell's
    wildcards and a pasted path mix them): a_0001 was said to be left unread though given, and not told of as the
    further channel of a_0000 it is."""
    from medseg.io.files import further_channels, unread_channels

    (tmp_path / "data").mkdir()
    for name in ("a_0000.nii.gz", "a_0001.nii.gz"):
        (tmp_path / "data" / name).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    given = [Path("data/a_0000.nii.gz"), tmp_path / "data" / "a_0001.nii.gz"]
    assert unread_channels(given) == []
    assert further_channels(given) == [(given[1], given[0])]
    assert further_channels([Path("data/../data/a_0000.nii.gz"), given[1]]) == [
        (given[1], Path("data/../data/a_0000.nii.gz"))]


def test_a_name_with_a_stray_space_or_quotes_names_the_file_that_is_there(tmp_path, case, make_package, capsys):
    """A path pasted with a space at its end ("scan.nii.gz "), or with the quotes a file manager's "copy as path"
    puts around it, is no file; the file without them is there, and the line names it (a trailing space is invisible in
    ``scan.nii.gz : no such file or folder``)."""
    folder = tmp_path / "Übung 1"
    folder.mkdir()
    shutil.copy(case, folder / "scan.nii.gz")
    package = str(make_package())
    for typed in (f"{folder}/scan.nii.gz ", f"{folder} /scan.nii.gz", f"'{folder}/scan.nii.gz'",
                  f'"{folder}/scan.nii.gz"', f" {folder}/scan.nii.gz"):
        code, _, err = run(["infer", typed, "--model", package, "-o", str(tmp_path / "out")], capsys)
        assert code == 1, typed
        assert err.strip().splitlines()[-1] == (
            f"medseg: error: {typed}: no such file or folder; {folder / 'scan.nii.gz'} is there (the path given "
            "differs only in a space or quote at an end of a name)"), err
        assert not (tmp_path / "out").exists()
    # the reference too, as the evaluation's files
    image = nib.load(case)
    label = folder / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), label)
    code, _, err = run(["evaluate", str(label), f"{label} "], capsys)
    assert code == 1 and f"{label} is there (the path given differs only in a space or quote" in err, err
    # a results folder for the report
    code, _, err = run(["report", f"{folder} "], capsys)
    assert code == 1 and err == (f"medseg: error: {folder} : no such results folder; {folder} is there (the path given "
                                 "differs only in a space or quote at an end of a name)\n"), err
    # a name that is simply missing says no more than that
    code, _, err = run(["infer", str(folder / "other.nii.gz "), "--model", package], capsys)
    assert err.strip().splitlines()[-1] == f"medseg: error: {folder / 'other.nii.gz '}: no such file or folder"


def test_a_name_in_another_letter_case_or_accent_composition_names_the_file_that_is_there(tmp_path, case,
                                                                                         make_package, capsys):
    """Course notes written on Windows or macOS, whose disks take either letter case, name ``Phantom.nii.gz``; a
    folder copied from a Mac spells ``Übung`` as ``U`` and its accent. On Linux both are no file, and the line
    named nothing else; it names the one file that is there, and how the names differ."""
    import unicodedata

    folder = tmp_path / unicodedata.normalize("NFD", "Übung 2")  # as macOS writes it
    folder.mkdir()
    shutil.copy(case, folder / "scan.nii.gz")
    package = str(make_package())
    typed = tmp_path / "Übung 2" / "Scan.nii.gz"  # typed: one character Ü, a capital S, and a space at the end
    code, _, err = run(["infer", f"{typed} ", "--model", package], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"medseg: error: {typed} : no such file or folder; {folder / 'scan.nii.gz'} is there (the path given differs "
        "only in a space or quote at an end of a name, letter case and how an accent is composed, as one character "
        "or as a letter and its accent)")
    code, _, err = run(["infer", str(folder / "SCAN.nii.gz"), "--model", package], capsys)
    assert err.strip().splitlines()[-1].endswith("is there (the path given differs only in letter case)")
    # two files that both match are not guessed between
    shutil.copy(case, folder / "SCAN.NII.GZ")
    code, _, err = run(["infer", str(folder / "Scan.nii.gz"), "--model", package], capsys)
    assert err.strip().splitlines()[-1] == f"medseg: error: {folder / 'Scan.nii.gz'}: no such file or folder"


def test_a_name_whose_file_has_the_stray_space_is_not_said_to_differ_in_letter_case(tmp_path, capsys):
    """A folder made with a space at the end of its name (``-o "Ergebnisse "``, as earlier versions took it), asked for
    without it: the names differ in that space, and the line said they differed "only in letter case"."""
    made = tmp_path / "Ergebnisse "
    made.mkdir()
    (made / "c00_seg.nii.gz").write_bytes(b"")
    code, _, err = run(["report", str(tmp_path / "Ergebnisse")], capsys)
    assert code == 1 and err == (
        f"medseg: error: {tmp_path / 'Ergebnisse'}: no such results folder; {made} is there (the path given differs "
        "only in a space or quote at an end of a name)\n"), err
    # in letter case too, both are said
    code, _, err = run(["report", str(tmp_path / "ergebnisse")], capsys)
    assert code == 1 and err.endswith(
        f"{made} is there (the path given differs only in a space or quote at an end of a name and letter case)\n"), err


def test_a_batch_of_missing_inputs_in_one_folder_lists_that_folder_once(tmp_path, case, make_package, capsys,
                                                                        monkeypatch):
    """Each missing input's line looks through its folder for a name spelt otherwise (up to 10,000 names): 300 missing
    inputs of a 10,000-file folder took 8.2 s where they had taken 3.6 s. The folder's names are read once while it
    is unchanged, and still found anew once it changes."""
    import os

    import medseg.io.files as files

    folder = tmp_path / "cases"
    folder.mkdir()
    for k in range(50):
        (folder / f"case{k:02d}.nii.gz").write_bytes(b"")
    listed = []
    real_scandir = os.scandir

    def scandir(path="."):
        listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(files.os, "scandir", scandir)
    package = str(make_package())
    missing = [str(folder / f"gone{k:02d}.nii.gz") for k in range(20)]
    code, _, err = run(["infer", *missing, "--model", package, "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "medseg: 20 of 20 inputs failed" in err
    assert listed.count(str(folder)) == 1, listed
    # a file spelt otherwise that appears later is named: the listing is read anew once the folder changed
    shutil.copy(case, folder / "Gone00.nii.gz")
    code, _, err = run(["infer", missing[0], "--model", package], capsys)
    assert err.strip().splitlines()[-1].endswith(f"{folder / 'Gone00.nii.gz'} is there (the path given differs only "
                                                 "in letter case)"), err
