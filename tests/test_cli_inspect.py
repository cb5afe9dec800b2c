"""`medseg inspect` (medseg/cli/inspect.py): the series listed, their flags and folders, and the one that would be
used."""

from __future__ import annotations

import json
import warnings

import pydicom
import pytest
from conftest import run_cli
from dicom_factory import SHAPE, make_series, slice_positions, stored_values, write_series

from medseg.io import read_image
from medseg.one_line import terminal_columns as _columns


def test_inspect_writes_control_characters_of_headers_and_names_escaped(tmp_path, capsys):
    """A SeriesDescription holding control characters reached the terminal raw from `medseg inspect`'s table: a
    carriage return let a received series show another description over its own, an ESC ] 0; set the title."""
    make_series(tmp_path / "scan\x07s", description="real\rFAKE\x1b]0;title\x07")
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    assert code == 0
    row = out.splitlines()[1]
    assert row.split()[2] == "real\\rFAKE\\x1b]0;title\\x07" and row.split()[-1] == "scan\\x07s"
    assert all(character.isprintable() for character in out.replace("\n", ""))


def test_series_spacing_reads_as_the_metrics_do(tmp_path, capsys):
    """A CT's 0.48828125 mm pixels (250 mm over 512), exact in float32: `inspect` and a sidecar's `input_info` give
    them as the metrics and the sidecar's own spacing_mm do, not rounded to 0.4882812."""
    write_series(tmp_path, stored_values(SHAPE), slice_positions(SHAPE[2], 2.5), pixel_spacing=(0.48828125, 0.48828125))
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path), "--json"], capsys)
    assert code == 0
    assert json.loads(stdout)["series"][0]["spacing_mm"] == [0.48828125, 0.48828125, 2.5]
    assert read_image(tmp_path).info["spacing_mm"] == [0.48828125, 0.48828125, 2.5]


def test_inspect_lists_series_flags_and_choice(tmp_path, capsys):
    make_series(tmp_path, seed=1, series_number=3, description="body", prefix="a")
    step = 2.0
    make_series(tmp_path, seed=2, series_number=6, description="tilted", prefix="t",
                positions=slice_positions(SHAPE[2], step, inplane_shift=(0.0, 0.5, 0.0)))
    keep = [0, 1, 3, 4, 5]
    positions = slice_positions(SHAPE[2], step)
    write_series(tmp_path, stored_values(SHAPE)[:, :, keep], [positions[k] for k in keep], series_number=8,
                 description="gappy", prefix="g")
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path), "--json"], capsys)
    assert code == 0
    report = json.loads(stdout)
    entries = {entry["key"]: entry for entry in report["series"]}
    assert entries["3"]["shape"] == [10, 8, 6] and entries["3"]["spacing_mm"] == [0.6, 0.8, 2.0]
    assert entries["3"]["orientation"] == "LPS" and entries["3"]["flags"] == []
    assert "tilt" in entries["6"]["flags"] and entries["6"]["tilt_deg"] == pytest.approx(14.0362, abs=1e-3)
    assert "gaps" in entries["8"]["flags"] and not entries["8"]["eligible"]
    assert report["chosen"]["key"] is None and "2 eligible series" in report["chosen"]["reason"]
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path), "--series", "6"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].split()[:4] == ["KEY", "NUMBER", "DESCRIPTION", "MODALITY"] and lines[0].endswith("FOLDER")
    assert any(line.startswith("8 ") and "missing slices" in line and line.endswith(" .") for line in lines)
    assert lines[-1] == "would use: series 6 (chosen with --series 6)"


def test_inspect_with_a_series_that_matches_nothing_exits_1(tmp_path, capsys):
    make_series(tmp_path, seed=9)
    code, out, err = run_cli(["inspect", str(tmp_path), "--series", "99"], capsys)
    # the reason once, on stderr, one line (it was on stdout only: a script keeping stderr saw a bare exit 1; then on
    # both, the same long line twice in a terminal); the listing closes with "would use: none"
    assert code == 1 and out.splitlines()[-1] == "would use: none" and "no series matches" not in out
    assert len(err.splitlines()) == 1 and err.startswith(f"medseg: error: {tmp_path}: no series matches the series "
                                                         "asked for, '99'")
    code, out, err = run_cli(["inspect", str(tmp_path), "--series", "99", "--json"], capsys)
    assert code == 1 and json.loads(out)["chosen"]["key"] is None
    assert "no series matches the series asked for, '99'" in err
    assert run_cli(["inspect", str(tmp_path)], capsys)[0] == 0


def test_inspect_lists_a_folder_that_holds_only_non_image_objects(tmp_path, capsys):
    """A folder with only a DICOM SEG: inspect gave only the error "no DICOM images found (1 non-image DICOM
    object(s))", no listing; it lists the object now, as it does beside images. infer still refuses the folder."""
    _, paths = make_series(tmp_path / "series")
    (tmp_path / "only").mkdir()
    dataset = pydicom.dcmread(paths[0])
    dataset.Modality = "SEG"
    dataset.save_as(tmp_path / "only" / "seg.dcm")
    code, out, err = run_cli(["inspect", str(tmp_path / "only")], capsys)
    # listed, and nothing usable: a script checking the folder is told so, on stderr too
    assert (code, err) == (1, f"medseg: error: {tmp_path / 'only'}: no DICOM images found\n")
    assert "ignored objects: seg.dcm (SEG object, not an image)" in out
    assert out.strip().splitlines()[-1] == "would use: none"  # its reason on stderr alone
    code, out, _ = run_cli(["inspect", str(tmp_path / "only"), "--json"], capsys)
    assert code == 1 and json.loads(out)["ignored_objects"] == [{"path": "seg.dcm",
                                                                  "reason": "SEG object, not an image"}]
    # a folder without anything DICOM (NIfTI files): the one-line error as before, with its hint
    (tmp_path / "nifti").mkdir()
    (tmp_path / "nifti" / "a.nii.gz").write_bytes(b"x")
    code, out, err = run_cli(["inspect", str(tmp_path / "nifti")], capsys)
    assert (code, out) == (1, "") and "no DICOM images found (1 non-DICOM file); a folder is read as one" in err
    code, out, err = run_cli(["infer", str(tmp_path / "only"), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "no DICOM images found (1 non-image DICOM object)" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_a_missing_folder_or_a_file_is_one_line_as_in_infer(tmp_path, capsys, command):
    """Before: Click's four-line usage error, exit 2, worded "Directory 'scan.nii.gz' is a file."."""
    afile = tmp_path / "scan.nii.gz"
    afile.write_bytes(b"not a folder")
    for given, problem in ((tmp_path / "gone", "no such folder"), (afile, "a file, not a folder of DICOM files")):
        args = [command, str(given)] + ([str(tmp_path / "out.nii.gz")] if command == "convert" else [])
        code, out, err = run_cli(args, capsys)
        assert (code, out, err) == (1, "", f"medseg: error: {given}: {problem}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]
    _, paths = make_series(tmp_path / "series")  # one slice of a series: its folder is named
    args = [command, str(paths[0])] + ([str(tmp_path / "out.nii.gz")] if command == "convert" else [])
    code, out, err = run_cli(args, capsys)
    assert (code, out, err) == (1, "", f"medseg: error: {paths[0]}: a DICOM file, not a folder of them; give the "
                                       f"folder of its series ({paths[0].parent})\n")
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("command", ["convert", "inspect", "infer"])
def test_a_dcm_file_that_is_no_dicom_or_a_seg_is_named_as_what_it_is(tmp_path, capsys, command):
    """A text file named .dcm was "a DICOM file, not a folder of them" (convert, inspect) or "a DICOM file, not a
    NIfTI image" (infer), and a DICOM SEG given to convert or inspect was told to give the SEG's own folder; one given
    to convert for its labels (to train on) now hears where docs/training.md shows how to write them."""
    text = tmp_path / "notes.dcm"
    text.write_text("exported by hand; not an image " * 10)
    _, paths = make_series(tmp_path / "series")
    seg = tmp_path / "liver.dcm"
    dataset = pydicom.dcmread(paths[0])
    dataset.Modality = "SEG"
    dataset.save_as(seg)
    out = tmp_path / "out"
    expected = {text: "not a DICOM file, though named .dcm (no DICM marker after a 128-byte preamble, and no DICOM "
                      "header without one)"}
    if command != "infer":  # infer's words for a SEG are its own (test_dicom_series)
        expected[seg] = ("a DICOM SEG (a segmentation), not a series of images; give the folder of the series it "
                         "segments (its labels as a label image, to train on: docs/training.md, 'A DICOM SEG as "
                         "training labels')")
    for given, problem in expected.items():
        args = [command, str(given)] + {"convert": [str(out / "x.nii.gz")], "inspect": [],
                                        "infer": ["-o", str(out)]}[command]
        code, stdout, err = run_cli(args, capsys)
        assert (code, stdout, err.strip().splitlines()[-1]) == (1, "", f"medseg: error: {given}: {problem}")
    assert not out.exists()


@pytest.mark.parametrize("command", ["inspect", "infer"])
def test_a_short_text_named_dcm_is_no_dicom_file_and_a_short_dicom_file_is_cut_short(tmp_path, capsys, command):
    """A text under 132 bytes named .dcm (a saved "404 Not Found" page) was "truncated DICOM file (22 bytes, shorter
    than the 132 that begin one)"; a DICOM file cut that short begins with binary bytes, and is still named so."""
    _, paths = make_series(tmp_path / "series")
    page = tmp_path / "page.dcm"
    page.write_text("<html>Not Found</html>")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(paths[0].read_bytes()[:100])
    expected = {page: "not a DICOM file, though named .dcm (no DICM marker after a 128-byte preamble, and no DICOM "
                      "header without one)",
                cut: "truncated DICOM file (100 bytes, shorter than the 132 that begin one)"}
    for given, problem in expected.items():
        args = [command, str(given)] + (["-o", str(tmp_path / "out")] if command == "infer" else [])
        code, stdout, err = run_cli(args, capsys)
        assert (code, stdout, err.strip().splitlines()[-1]) == (1, "", f"medseg: error: {given}: {problem}")
    assert not (tmp_path / "out").exists()


def test_inspect_names_each_series_number_and_folder(tmp_path, capsys):
    """Two series with one number (keyed by their UIDs) could only be told apart by position and UID: the table now
    shows each one's number and the folder that holds its files."""
    make_series(tmp_path / "study" / "HFS", seed=1, series_number=2, prefix="a")
    make_series(tmp_path / "study" / "HFDL" / "x", seed=2, series_number=2, prefix="b")
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path / "study"), "--json"], capsys)
    assert code == 0
    entries = json.loads(stdout)["series"]
    assert sorted((entry["number"], entry["folder"]) for entry in entries) == [(2, "HFDL/x"), (2, "HFS")]
    assert all(entry["key"] == entry["uid"] for entry in entries)  # the shared number keys neither
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path / "study" / "HFS")], capsys)
    row = stdout.splitlines()[1].split()
    assert (row[0], row[1], row[-1]) == ("2", "2", ".")


def test_inspect_tells_each_series_study_in_a_folder_of_several(tmp_path, capsys):
    """A worklist's export of several studies: the line asking to choose named the studies ("2 eligible series of 2
    studies (2024-03-01 'MR knee', 2024-03-02 'CT head')"), but neither the table nor the JSON said which series
    was of which, and two series alike (`t1`, number 3, one of each study) were told apart by their UIDs alone.
    Never by patient."""
    patient = {"PatientID": "P-17", "PatientName": "Doe^Jane"}
    for sub, seed, study, date, description in (("a", 1, "1.2.826.0.1.3680043.8.498.71", "20240301", "MR knee"),
                                                ("b", 2, "1.2.826.0.1.3680043.8.498.72", "20240302", "CT head")):
        make_series(tmp_path / "study" / sub, seed=seed, series_number=3, description="t1", prefix=sub,
                    series_uid=f"{study}.{seed}", extra={"StudyInstanceUID": study, "StudyDate": date,
                                                         "StudyDescription": description, **patient})
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path / "study"), "--json"], capsys)
    assert code == 0
    found = {entry["folder"]: [entry[key] for key in ("study_uid", "study_date", "study_description", "study")]
             for entry in json.loads(stdout)["series"]}
    assert found == {"a": ["1.2.826.0.1.3680043.8.498.71", "20240301", "MR knee", "2024-03-01 'MR knee'"],
                     "b": ["1.2.826.0.1.3680043.8.498.72", "20240302", "CT head", "2024-03-02 'CT head'"]}
    code, out, err = run_cli(["inspect", str(tmp_path / "study")], capsys)
    lines = out.splitlines()
    assert code == 0 and " STUDY " in lines[0] and lines[0].index("STUDY") < lines[0].index("UID")
    rows = {line.split()[-1]: line for line in lines[1:3]}
    assert "2024-03-01 'MR knee'" in rows["a"] and "2024-03-02 'CT head'" in rows["b"]
    assert not [word for word in ("P-17", "Doe") if word in out + err]
    # one study: no column for it (the JSON still has it)
    code, out, _ = run_cli(["inspect", str(tmp_path / "study" / "a")], capsys)
    assert code == 0 and "STUDY" not in out.splitlines()[0]


def test_inspect_aligns_columns_after_wide_and_combining_characters(tmp_path, capsys):
    """A study or series description in Japanese (two terminal columns a character) or with a combining accent (none)
    was padded by its count of characters: every column after it stood out of line with the header, row by row."""
    for sub, seed, study, description, series in (("a", 1, "1.2.826.0.1.3680043.8.498.81", "頭部 MRI", "T1 強調"),
                                                  ("b", 2, "1.2.826.0.1.3680043.8.498.82", "Cafe\u0301 knee", "t1")):
        make_series(tmp_path / "study" / sub, seed=seed, series_number=3, description=series, prefix=sub,
                    series_uid=f"{study}.{seed}", extra={"StudyInstanceUID": study, "StudyDate": "20240301",
                                                         "StudyDescription": description,
                                                         "SpecificCharacterSet": "ISO_IR 192"})
    code, out, _ = run_cli(["inspect", str(tmp_path / "study")], capsys)
    lines = out.splitlines()[:3]
    assert code == 0 and "頭部 MRI" in out and "Cafe\u0301 knee" in out
    header, rows = lines[0], lines[1:]
    uids = [f"1.2.826.0.1.3680043.8.498.8{n}.{n}" for n in (1, 2)]  # the KEY too: both are series 3
    # after the series' description, after the study's, and the last but one
    assert {_columns(header[:header.index(" MODALITY ") + 1])} == {_columns(row[:row.index(" CT ") + 1])
                                                                   for row in rows}
    assert {_columns(header[:header.index(" UID ") + 1])} == {_columns(row[:row.rindex(uid)]) for row, uid in
                                                            zip(rows, uids)}
    assert {_columns(header[:header.index("STATUS")])} == {_columns(row[:row.index("eligible")]) for row in rows}


def test_a_folder_with_a_space_given_unquoted_says_to_quote_it(tmp_path, capsys, monkeypatch):
    """``medseg inspect MR Studie`` was "Got unexpected extra argument (Studie)" alone; the words, joined by the
    space the shell split them at, name a folder that is there, and the usage line says so."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "MR Studie").mkdir()
    code, _, err = run_cli(["inspect", "MR", "Studie"], capsys)
    assert code == 2
    assert err == ("medseg inspect: error: Got unexpected extra argument (Studie); 'MR Studie' is there: give a path "
                   "with spaces in quotes, \"MR Studie\". Try 'medseg inspect --help'.\n")
    code, _, err = run_cli(["convert", "MR", "Studie", "x.nii.gz"], capsys)
    assert code == 2 and "(x.nii.gz); 'MR Studie' is there: give a path with spaces in quotes" in err, err
    code, _, err = run_cli(["inspect", "MR", "Bilder"], capsys)  # nothing of that name: as click words it
    assert err == "medseg inspect: error: Got unexpected extra argument (Bilder). Try 'medseg inspect --help'.\n"


def _two_series_folder(root):
    with warnings.catch_warnings():  # 80 characters, past LO's 64, as some scanners write: pydicom's word on writing
        warnings.filterwarnings("ignore", message=r"The value length \(80\) exceeds the maximum length of 64 allowed "
                                r"for VR LO", category=UserWarning)
        make_series(root / "a", seed=1, series_number=3, description="body " * 16, prefix="a")
    make_series(root / "deeply" / "nested" / "folder" / "of" / "the" / "second" / "series", seed=2, series_number=6,
                description="tilted", prefix="t",
                positions=slice_positions(SHAPE[2], 2.0, inplane_shift=(0.0, 0.5, 0.0)))


@pytest.mark.parametrize("columns", [80, 120])
def test_inspect_fits_a_narrow_terminal_with_every_field(tmp_path, capsys, monkeypatch, columns):
    """The table was 200-330 columns wide (a UID, a study, a folder), each row wrapped over the next in an 80 or
    120 column terminal: narrower than the table, each series is a block of one field a line, every line within
    the width, no field left out."""
    _two_series_folder(tmp_path)
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert max(_columns(line) for line in lines) <= columns
    monkeypatch.delenv("COLUMNS")
    report = json.loads(run_cli(["inspect", str(tmp_path), "--json"], capsys)[1])
    blocks = out.split("\n\n")
    assert len(blocks) == len(report["series"]) == 2
    for block, entry in zip(blocks, report["series"]):
        block_lines = block.splitlines()
        assert block_lines[0] == f"series {entry['key']}"
        fields = {}
        for line in block_lines[1:]:
            if not line.startswith(" "):  # the lines after the last series
                break
            if not line.startswith("    "):
                label, value = line.strip().split("  ", 1)
                fields[label] = value.strip()
            else:  # a value wrapped onto the next line
                fields[label] += " " + line.strip()
        assert list(fields) == ["number", "description", "modality", "position", "images", "shape", "spacing (mm)",
                                "orientation", "flags", "uid", "status", "folder"]
        assert fields["number"] == str(entry["number"])
        assert fields["description"] == " ".join(entry["description"].split())
        assert (fields["modality"], fields["images"]) == (entry["modality"], str(entry["images"]))
        assert fields["shape"] == "x".join(map(str, entry["shape"])) and fields["uid"] == entry["uid"]
        assert fields["folder"].replace(" ", "") == entry["folder"]
        assert fields["orientation"] == entry["orientation"] and fields["status"] == "eligible"
    assert fields["flags"].startswith("tilt(") and "tilt" in entry["flags"]
    # the closing lines wrap where the folder's path falls (a long temporary folder moves the break)
    assert "would use: none:" in out and "2 eligible series" in " ".join(out.split())


def test_inspect_piped_or_wide_keeps_its_table(tmp_path, capsys, monkeypatch):
    """Piped (no terminal, no COLUMNS), or in a terminal as wide as the table: one row a series, for grep and awk."""
    _two_series_folder(tmp_path)
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["KEY", "NUMBER"] and max(map(len, lines[:3])) > 120
    assert lines[1].startswith("3 ") and lines[2].startswith("6 ")
    monkeypatch.setenv("COLUMNS", "400")
    assert run_cli(["inspect", str(tmp_path)], capsys)[1].splitlines()[:3] == lines[:3]


def test_the_width_is_the_terminals_unless_columns_says_otherwise(monkeypatch):
    """A real terminal (a pseudo-terminal sized 100×30): its width; COLUMNS over it; a pipe: no limit; a terminal
    that gives no size: 80."""
    import os
    import struct
    import sys

    from medseg.cli.options import output_columns

    fcntl = pytest.importorskip("fcntl", reason="pseudo-terminals are POSIX's")
    termios = pytest.importorskip("termios", reason="pseudo-terminals are POSIX's")

    leader, follower = os.openpty()
    terminal = os.fdopen(follower, "w")
    read_end, write_end = os.pipe()
    pipe = os.fdopen(write_end, "w")
    try:
        monkeypatch.delenv("COLUMNS", raising=False)
        monkeypatch.setattr(sys, "stdout", terminal)
        assert output_columns() == 80  # never sized
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        assert output_columns() == 100
        monkeypatch.setenv("COLUMNS", "120")
        assert output_columns() == 120
        monkeypatch.setattr(sys, "stdout", pipe)
        assert output_columns() == 120
        monkeypatch.setenv("COLUMNS", "wide")  # not a number: as if unset
        assert output_columns() is None
    finally:
        monkeypatch.undo()
        terminal.close()
        pipe.close()
        os.close(leader)
        os.close(read_end)


@pytest.mark.parametrize("columns", [40, 60])
def test_inspect_wraps_wide_characters_within_a_narrow_terminal(tmp_path, capsys, monkeypatch, columns):
    """A description in Japanese (two terminal columns a character) was wrapped by its count of characters: in a
    60-column terminal its line took 66 columns and ran over the edge. Every line fits, its words kept whole and in
    order, but a UID longer than a line: it stands whole on the line after its label (broken to fit, a copied UID
    lost its digits to the line break)."""
    description = " ".join(["頭部単純CT"] * 5)  # 5 words of 10 columns (6 characters) each
    make_series(tmp_path / "a", seed=1, series_number=3, prefix="a",
                extra={"SpecificCharacterSet": "ISO_IR 192", "SeriesDescription": description})
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    lines = out.splitlines()
    uid = lines[next(i for i, line in enumerate(lines) if line == "  uid") + 1]
    assert code == 0 and lines[0] == "series 3" and uid.startswith("1.2.")
    assert [line for line in lines if _columns(line) > columns and line != uid] == []
    start = next(i for i, line in enumerate(lines) if line.startswith("  description  "))
    told = [lines[start][len("  description"):]] + [line for line in lines[start + 1:start + 4]
                                                     if line.startswith("      ")]
    assert " ".join(" ".join(told).split()) == description


@pytest.mark.parametrize("width", [5, 10, 24, 40, 80])
def test_wrapped_lines_fit_their_width_in_terminal_columns(width):
    """The narrow listing's wrapping (medseg.one_line.wrapped): every line within the width in terminal columns (a
    Japanese character two, a combining accent none), nothing lost or reordered, even where the indent is as wide as
    the terminal."""
    from medseg.one_line import wrapped

    for text in ("series 3", "  number        3", "  uid           1.2.826.0.1.3680043.8.498.7402212076205321229",
                 "  description   頭部単純CT 頭部単純CT 頭部単純CT 頭部単純CT",
                 "Cafe\u0301 knee  de\u0301ja\u0300 vu " * 3,
                 "would use: none: /data/study: 2 eligible series, choose one with --series"):
        lines = wrapped(text, width, 16)
        assert all(_columns(line) <= width for line in lines), (text, lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", ""), (text, lines)
        assert lines[0].startswith(text[:len(text) - len(text.lstrip())]) and lines[-1].strip()
    assert wrapped("  uid           1.2.826.0.1.3680043.8.49", 24, 16) == ["  uid           1.2.826.",
                                                                         "            0.1.3680043.", "            8.49"]
    assert wrapped("  description   頭部単純CT 頭部単純CT", 32, 16) == ["  description   頭部単純CT",
                                                                     "                頭部単純CT"]


def test_inspect_help_says_columns_sets_the_width_of_piped_output_too(tmp_path, capsys, monkeypatch):
    """COLUMNS is taken before the terminal is asked, piped or not (a script or CI job that exports it gets the
    blocks); --help said that piped output "stays a table", whatever COLUMNS says."""
    _two_series_folder(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    out = run_cli(["inspect", str(tmp_path)], capsys)[1]  # not a terminal: captured
    assert out.startswith("series 3\n  number ")
    code, text, _ = run_cli(["inspect", "--help"], capsys)
    assert code == 0 and "Piped or redirected with COLUMNS unset, it stays a table." in " ".join(text.split())


def test_the_table_tests_pass_where_the_shell_exports_columns(tmp_path):
    """`inspect` takes COLUMNS as its width, piped or not: run from a shell that exports it (COLUMNS=100), seven of
    this module's tests got the blocks of one field a line where they read the table, and failed on correct output.
    The tests run with COLUMNS unset (conftest), those that want a width setting it themselves."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--basetemp",
         str(tmp_path / "base"), "tests/test_cli_inspect.py::test_inspect_lists_series_flags_and_choice",
         "tests/test_cli_inspect.py::test_inspect_aligns_columns_after_wide_and_combining_characters"],
        capture_output=True, text=True, cwd=root, timeout=300, env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("columns", [60, 80])
def test_the_closing_lines_keep_a_uid_whole_on_a_line_of_its_own(tmp_path, capsys, monkeypatch, columns):
    """In the narrow layout a closing line ("would use: none: ... UID 1.2.826...") was broken inside the UID where
    the width fell: a copied UID lost its digits to the line break. The UID stands alone on a line of its own, whole,
    with the ``)`` that closes on it (alone on the next line, it started a line with ``)``); every other line fits
    the width, and nothing of the line is lost or reordered. A failure's reason is the one error line on stderr,
    whole whatever the width (the listing closes with "would use: none")."""
    from medseg.cli.inspect import _closing

    uid = "1.2.826.0.1.3680043.8.498." + "5" * 38  # 64 characters, the longest a UID is
    values = stored_values((10, 8, 1))
    write_series(tmp_path / "s", values, slice_positions(1, 2.0), series_uid=uid)  # one slice: no 3D volume
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = run_cli(["inspect", str(tmp_path / "s")], capsys)
    assert code == 1 and out.splitlines()[-1] == "would use: none" and uid not in out.splitlines()[-1]
    assert len(err.splitlines()) == 1 and f"UID {uid}) cannot be" in err
    closing = f"would use: none: {err.removeprefix('medseg: error: ').strip()}"
    told = _closing(closing, columns).splitlines()
    # indented as the other lines where that fits (80), from the first column where it does not (60)
    assert (f"  {uid})" if 3 + len(uid) <= columns else f"{uid})") in told
    assert [line for line in told if line.lstrip().startswith(")")] == []
    assert [line for line in told if _columns(line) > columns and line != f"{uid})"] == []
    assert "".join(told).replace(" ", "") == closing.replace(" ", "")


@pytest.mark.parametrize("columns", [60, 100])
def test_a_path_through_folders_named_by_uid_is_not_torn_apart(tmp_path, capsys, monkeypatch, columns):
    """A PACS export names its folders by study and series UID: a file passed over in one was named in the closing
    line as "1.2.840...320", "/", "1.2.840...321", "/notes.txt" on four lines, the path torn at each UID (taken for a
    UID of the closing line's own). A UID inside a path is part of it: the line is wrapped as any other."""
    study = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    folder = tmp_path / study / "1.2.840.113619.2.55.3.604688119.969.1268071029.321"
    make_series(folder)
    (folder / "notes.txt").write_text("not an image")
    monkeypatch.delenv("COLUMNS", raising=False)
    code, piped, _ = run_cli(["inspect", str(tmp_path)], capsys)
    closing = next(line for line in piped.splitlines() if line.startswith("skipped files: "))
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("skipped files:"))
    told = lines[start:next(i for i, line in enumerate(lines) if line.startswith("would use: "))]
    assert code == 0 and told[0].startswith(f"skipped files: {study[:10]}")
    assert [line for line in told if line.strip() in ("/", "") or _columns(line) > columns] == []
    assert "".join(line.removeprefix("  ") if i else line for i, line in enumerate(told)) == closing


@pytest.mark.parametrize("columns", [40, 60, 79])
def test_the_uid_field_of_a_block_stays_whole(tmp_path, capsys, monkeypatch, columns):
    """The block's own ``uid`` field was broken where the width fell (at 60 columns "1.2.826...534" and
    "50093337400775536666" on two lines), as the closing lines were: copied, it lost its digits to the line break.
    Where it does not fit beside its label it stands whole on the next line (indented where that fits)."""
    uid = "1.2.826.0.1.3680043.8.498." + "7" * 38  # 64 characters, the longest a UID is: never beside its label here
    make_series(tmp_path / "s", series_uid=uid)
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(["inspect", str(tmp_path / "s")], capsys)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("uid"))
    assert code == 0 and lines[at].strip() == "uid"
    assert lines[at + 1] == (f"  {uid}" if 2 + len(uid) <= columns else uid)
    assert lines[at + 2].strip().startswith("status")


@pytest.mark.parametrize("columns", [60, 80])
def test_a_choice_to_make_keeps_each_uid_of_its_closing_line_whole(tmp_path, capsys, monkeypatch, columns):
    """The closing line that still names UIDs on stdout, ``would use: none: … 2 eligible series …`` (a choice to make,
    exit 0), keeps each UID whole on a line of its own with the ``)`` that closes on it, in the narrow layout: the
    test of the failed line's UID now reads its error line, which stdout no longer repeats."""
    uids = ["1.2.826.0.1.3680043.8.498." + digit * 38 for digit in "56"]  # 64 characters, the longest a UID is
    for number, (name, uid) in enumerate(zip("ab", uids), start=3):
        make_series(tmp_path / name, seed=number, series_number=number, series_uid=uid, prefix=name)
    monkeypatch.delenv("COLUMNS", raising=False)
    code, piped, _ = run_cli(["inspect", str(tmp_path)], capsys)
    closing = piped.splitlines()[-1]
    assert code == 0 and closing.startswith("would use: none: ") and "2 eligible series" in closing
    assert all(f"UID {uid})" in closing for uid in uids), closing
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    lines = out.splitlines()
    told = lines[next(i for i, line in enumerate(lines) if line.startswith("would use: ")):]
    assert code == 0 and all((f"  {uid})" if 3 + len(uid) <= columns else f"{uid})") in told for uid in uids), told
    assert [line for line in told if line.lstrip().startswith(")")] == []
    assert [line for line in told if _columns(line) > columns and line.strip() not in {f"{u})" for u in uids}] == []
    assert "".join(told).replace(" ", "") == closing.replace(" ", "")
