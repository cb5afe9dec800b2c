"""Sample sheets (medseg.cohort.samples): paths, encodings, columns, bad sheets, and cutting a cohort into batches."""

from __future__ import annotations

import codecs
import os

import pytest
from cohort_cases import _sheet

from medseg.cohort import batches, read_samples
from medseg.errors import InputError


def test_sheet_paths_are_relative_to_its_folder(tmp_path):
    sheet = _sheet(tmp_path, "# a comment\n\ncase_id\timage\treference\tsite\n"
                             "a\timg/a.nii.gz\tlabels/a.nii.gz\tX\n"
                             f"b\t{tmp_path}/elsewhere/b.nii.gz\t\tY\n"
                             "c\t../up/c.nii.gz\n")
    samples = read_samples(sheet)
    assert [s.case_id for s in samples] == ["a", "b", "c"]
    assert samples[0].image == tmp_path / "img" / "a.nii.gz"
    assert samples[0].reference == tmp_path / "labels" / "a.nii.gz"
    assert samples[1].image == tmp_path / "elsewhere" / "b.nii.gz"
    assert samples[1].reference is None  # empty cell
    assert samples[2].image == tmp_path.parent / "up" / "c.nii.gz"  # normalised, no '..' left
    assert samples[2].reference is None  # short row
    assert [s.line for s in samples] == [4, 5, 6]
    # trailing tabs (as a spreadsheet exports a row) are empty cells, not extra columns
    trailing = read_samples(_sheet(tmp_path, "case_id\timage\treference\na\ta.nii.gz\t\t\t\n"))
    assert trailing[0].image == tmp_path / "a.nii.gz" and trailing[0].reference is None
    trailing = read_samples(_sheet(tmp_path, "case_id\timage\t\t\na\ta.nii.gz\n"))  # on the header too
    assert trailing[0].image == tmp_path / "a.nii.gz"


def test_dot_dot_after_a_link_to_a_folder_is_read_as_the_shell_reads_it(tmp_path):
    """``scans/../labels/a.nii.gz`` with ``scans`` a link into another site's folder: the shell and ``medseg infer``
    open that site's ``labels/a.nii.gz``; the sheet read the lexical ``labels/a.nii.gz`` beside it, another file."""
    for site in ("siteX", "."):
        (tmp_path / site / "labels").mkdir(parents=True, exist_ok=True)
        (tmp_path / site / "labels" / "a.nii.gz").write_bytes(site.encode())
    (tmp_path / "siteX" / "scans").mkdir()
    (tmp_path / "scans").symlink_to(tmp_path / "siteX" / "scans", target_is_directory=True)
    (sample,) = read_samples(_sheet(tmp_path, "case_id\timage\treference\na\tscans/../labels/a.nii.gz\t"
                                              "labels/./a.nii.gz\n"))
    assert sample.image.read_bytes() == b"siteX" == (tmp_path / "scans/../labels/a.nii.gz").read_bytes()
    assert sample.image == tmp_path.resolve() / "siteX" / "labels" / "a.nii.gz"
    assert sample.reference == tmp_path / "labels" / "a.nii.gz"  # no link before a '..': as written, normalised


def test_dot_dot_after_a_link_keeps_the_file_name_written(tmp_path):
    """The folders are resolved as the shell resolves them, not the file: ``labels/a.nii.gz`` a link to a store's
    ``blob-0001`` was recorded as the blob, and refused as a NIfTI named without .nii or .nii.gz."""
    (tmp_path / "siteX" / "labels").mkdir(parents=True)
    (tmp_path / "siteX" / "scans").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "blob-0001").write_bytes(b"label")
    (tmp_path / "siteX" / "labels" / "a.nii.gz").symlink_to(tmp_path / "store" / "blob-0001")
    (tmp_path / "scans").symlink_to(tmp_path / "siteX" / "scans", target_is_directory=True)
    (sample,) = read_samples(_sheet(tmp_path, "case_id\timage\nb\tscans/../labels/a.nii.gz\n"))
    assert sample.image == tmp_path.resolve() / "siteX" / "labels" / "a.nii.gz"
    assert sample.image.read_bytes() == b"label"


def test_dot_dot_after_a_link_keeps_the_links_written_after_it(tmp_path):
    """Only the ``..`` after a link is resolved: ``scans/../labels_link/a.nii.gz`` (``labels_link`` a link to another
    store, named after the ``..``) named the link's target (every folder before the file resolved), not the link
    written; the file read is the same."""
    (tmp_path / "siteX" / "scans").mkdir(parents=True)
    (tmp_path / "store" / "labels").mkdir(parents=True)
    (tmp_path / "store" / "labels" / "a.nii.gz").write_bytes(b"label")
    (tmp_path / "siteX" / "labels_link").symlink_to(tmp_path / "store" / "labels", target_is_directory=True)
    (tmp_path / "scans").symlink_to(tmp_path / "siteX" / "scans", target_is_directory=True)
    (sample,) = read_samples(_sheet(tmp_path, "case_id\timage\nb\tscans/../labels_link/a.nii.gz\n"))
    assert sample.image == tmp_path.resolve() / "siteX" / "labels_link" / "a.nii.gz"
    assert sample.image.read_bytes() == b"label"


def test_a_sheet_row_naming_a_macos_resource_fork_file_is_told_so(tmp_path):
    """A sheet made with ``find imagesTr -name '*.nii.gz'`` from a Decathlon download lists its ``._`` files too:
    the line was refused for its case_id ``._case``, not for what the file is."""
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "imagesTr" / "._case.nii.gz").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    sheet = _sheet(tmp_path, "case_id\timage\treference\n._case\timagesTr/._case.nii.gz\t\n")
    with pytest.raises(InputError) as info:
        read_samples(sheet)
    assert str(info.value) == (
        f"{sheet}:2: image imagesTr/._case.nii.gz: a macOS resource-fork file (AppleDouble, the '._' companion of "
        "case.nii.gz that a Mac writes and the Decathlon's tarballs hold), not an image; take its row out of the "
        "sheet (find … ! -name '._*' lists no such files)")


def test_a_sheet_written_on_windows_takes_backslashes_as_folder_separators(tmp_path):
    """``data\\a.nii.gz`` (a sheet typed or exported on Windows) named a file with backslashes in its name: the case
    was listed as a missing image and failed when it ran. A Windows drive path is refused at once, with its line."""
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "a.nii.gz").write_bytes(b"")
    (tmp_path / "odd\\name.nii.gz").write_bytes(b"")  # a file named with a backslash is taken as it is named
    sheet = _sheet(tmp_path, "case_id\timage\treference\n"
                             "a\tdata\\sub\\a.nii.gz\tlabels\\a.nii.gz\n"
                             "b\todd\\name.nii.gz\n"
                             "c\t..\\up\\c.nii.gz\n")
    samples = read_samples(sheet)
    assert samples[0].image == tmp_path / "data" / "sub" / "a.nii.gz"
    assert samples[0].reference == tmp_path / "labels" / "a.nii.gz"  # not there either: read as meant, then missing
    assert samples[1].image == tmp_path / "odd\\name.nii.gz"
    assert samples[2].image == tmp_path.parent / "up" / "c.nii.gz"
    for cell, column in (("C:\\Users\\x\\a.nii.gz\t", "image"), ("a.nii.gz\tD:/labels/a.nii.gz", "reference"),
                         ("\\\\server\\share\\a.nii.gz\t", "image")):
        sheet = _sheet(tmp_path, f"case_id\timage\treference\n# first\na\t{cell}\n")
        with pytest.raises(InputError) as caught:
            read_samples(sheet)
        value = cell.split("\t")[0 if column == "image" else 1]
        assert str(caught.value) == (f"{sheet}:3: the {column} {value} is a Windows path; give its path on this "
                                     "machine (relative to the sheet's folder, or absolute)")


def test_a_cell_written_without_its_extension_names_the_file_it_may_mean(tmp_path):
    """``case01`` where ``case01.nii.gz`` lies beside it passed the sheet and failed when its case ran, as "no such
    file or folder", naming neither the row nor the file meant. It is refused at once with the line, the cell and the
    file(s) of that name with an image file's extension; it is not taken for one of them in silence."""
    data = tmp_path / "data"
    (data / "dicom01").mkdir(parents=True)
    for name in ("case01.nii.gz", "case01_label.nii.gz", "case02.nii", "case02.NRRD", "case03.txt"):
        (data / name).write_bytes(b"")
    rows = {
        "case01\tdata/case01\t": ("image", "data/case01", "data/case01.nii.gz is: did you mean data/case01.nii.gz?"),
        "case01\tdata/case01.nii.gz\tdata/case01_label": (
            "reference", "data/case01_label", "data/case01_label.nii.gz is: did you mean data/case01_label.nii.gz?"),
        "case02\tdata/case02\t": ("image", "data/case02", "data/case02.NRRD and data/case02.nii are: did you mean "
                                                          "data/case02.NRRD or data/case02.nii?"),
    }
    for row, (column, cell, meant) in rows.items():
        sheet = _sheet(tmp_path, f"case_id\timage\treference\n# a comment\n{row}\n")
        with pytest.raises(InputError) as caught:
            read_samples(sheet)
        assert str(caught.value) == (f"{sheet}:3: the {column} {cell} is not there, but {meant} Give the file's whole "
                                     "name, with its extension")
    # a DICOM folder, a missing image with no such file beside it (a failure when run) and one whose only namesake is
    # no image pass as before
    sheet = _sheet(tmp_path, "case_id\timage\na\tdata/dicom01\nb\tdata/gone\nc\tdata/case03\nd\tnowhere/x\n")
    assert [sample.image for sample in read_samples(sheet)] == [data / "dicom01", data / "gone", data / "case03",
                                                                tmp_path / "nowhere" / "x"]


def test_under_wsl_a_windows_drive_path_is_read_where_wsl_mounts_the_drive(tmp_path, monkeypatch):
    """A sheet made in a Windows spreadsheet names its files by drive (``C:\\scans\\a.nii.gz``); run under WSL,
    where the workflow runs for Windows users, each row was refused as a Windows path, though WSL mounts that drive
    at ``/mnt/c``. It is read there; a file not there either is named with both paths. Off WSL, refused as before."""
    from medseg.cohort import samples

    monkeypatch.setattr(samples, "WSL_DRIVES", tmp_path / "mnt", raising=False)
    monkeypatch.setattr(samples, "_on_wsl", lambda: True, raising=False)
    (tmp_path / "mnt" / "c" / "scans" / "x").mkdir(parents=True)
    (tmp_path / "mnt" / "c" / "scans" / "a.nii.gz").write_bytes(b"")
    sheet = _sheet(tmp_path, "case_id\timage\treference\na\tC:\\scans\\x\\..\\a.nii.gz\tc:/scans/a.nii.gz\n")
    (sample,) = read_samples(sheet)
    assert sample.image == sample.reference == tmp_path / "mnt" / "c" / "scans" / "a.nii.gz"
    sheet = _sheet(tmp_path, "case_id\timage\na\tD:\\scans\\a.nii.gz\n")
    with pytest.raises(InputError) as caught:
        read_samples(sheet)
    assert str(caught.value) == (f"{sheet}:2: the image D:\\scans\\a.nii.gz is a Windows path, and "
                                 f"{tmp_path / 'mnt' / 'd' / 'scans' / 'a.nii.gz'}, where WSL mounts that drive, is "
                                 "not there either; give its path on this machine (relative to the sheet's folder, or "
                                 "absolute)")
    monkeypatch.setattr(samples, "_on_wsl", lambda: False)
    with pytest.raises(InputError, match=r":2: the image C:\\scans\\a\.nii\.gz is a Windows path; give its path"):
        read_samples(_sheet(tmp_path, "case_id\timage\na\tC:\\scans\\a.nii.gz\n"))


def test_a_name_the_file_system_encoding_cannot_hold_is_a_sheet_error(tmp_path):
    """In a C locale with Python's UTF-8 mode turned off (PYTHONUTF8=0) file names are ASCII: a UTF-8 sheet naming
    `Müller.nii.gz` passed the sheet's checks and ended the cohort step in a UnicodeEncodeError traceback at the first
    look at the file. The sheet's line says so, and how to run."""
    import subprocess
    import sys

    (tmp_path / "Müller.nii.gz").write_bytes(b"")
    sheet = _sheet(tmp_path, "case_id\timage\na\tM\u00fcller.nii.gz\n")
    script = ("import sys\nfrom medseg.cohort.samples import read_samples\nfrom medseg.errors import InputError\n"
              "try:\n    read_samples(sys.argv[1])\nexcept InputError as error:\n    print(str(error).encode())\n")
    done = subprocess.run([sys.executable, "-c", script, str(sheet)], capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"})
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == repr(f"{sheet}:2: the image Müller.nii.gz holds 'ü', which file names cannot hold in this "
                               "system's encoding (ascii); run medseg in a UTF-8 locale (LC_ALL=C.UTF-8) or with "
                               "PYTHONUTF8=1".encode()) + "\n"


def test_a_sheet_finds_a_name_whose_accents_are_composed_otherwise_on_disk(tmp_path):
    """'é' is one character (NFC, as typed on Linux or Windows) or 'e' and a combining accent (NFD, as macOS names
    files): the two look the same in the sheet and in ``ls``, but the case was listed as a missing image."""
    import unicodedata

    composed, decomposed = unicodedata.normalize("NFC", "bild_é"), unicodedata.normalize("NFD", "bild_é")
    assert composed != decomposed
    (tmp_path / "dätä").mkdir()
    (tmp_path / "dätä" / f"{composed}.nii.gz").write_bytes(b"")
    (tmp_path / f"{decomposed}.nii.gz").write_bytes(b"")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(unicodedata.normalize("NFD", "case_id\timage\treference\na\tdätä/bild_é.nii.gz\tbild_é.nii.gz\n")
                     + unicodedata.normalize("NFC", "b\tbild_é.nii.gz\n") + "c\tdata/missing_é.nii.gz\n",
                     encoding="utf-8")
    samples = read_samples(sheet)
    assert samples[0].image == tmp_path / "dätä" / f"{composed}.nii.gz" and samples[0].image.exists()
    assert samples[0].reference == tmp_path / f"{decomposed}.nii.gz" and samples[0].reference.exists()
    assert samples[1].image == tmp_path / f"{decomposed}.nii.gz"
    assert samples[2].image == tmp_path / "data" / "missing_é.nii.gz"  # in neither form: as written, and missing


def test_a_sheet_saved_as_utf16_is_read_and_one_in_another_encoding_named(tmp_path):
    """A spreadsheet's "Unicode text" export is the tab-separated sheet in UTF-16 with a byte order mark: it was
    refused with Python's "'utf-8' codec can't decode byte 0xff in position 0"."""
    text = "case_id\timage\treference\r\na\tbilder/müller.nii.gz\tlabels/a.nii.gz\r\n"
    for encoding in ("utf-16", "utf-16-be", "utf-8-sig", "utf-8"):
        sheet = tmp_path / f"{encoding}.tsv"
        data = text.encode(encoding)
        sheet.write_bytes(codecs.BOM_UTF16_BE + data if encoding == "utf-16-be" else data)
        samples = read_samples(sheet)
        assert [(s.case_id, s.image, s.reference) for s in samples] == [
            ("a", tmp_path / "bilder" / "müller.nii.gz", tmp_path / "labels" / "a.nii.gz")], encoding
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError) as error:
        read_samples(latin)
    before = text[:text.index("ü")]
    line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
    assert line > 1  # the sheet's line is named (only the byte position was)
    assert str(error.value) == (f"{latin}: the sample sheet is not UTF-8 text (byte 0xfc on line {line}, column "
                                f"{column}); save it as UTF-8 text")
    marked = tmp_path / "marked.tsv"  # a UTF-8 byte order mark counts in line 1's column (the raw file's bytes)
    marked.write_bytes(codecs.BOM_UTF8 + b"case_id\timage\xe9\n")
    with pytest.raises(InputError, match=r"\(byte 0xe9 on line 1, column 17\)"):
        read_samples(marked)
    # UTF-16 without its byte order mark: "header lacks the column(s) case_id, image; found c a s e _ i d" with NULs
    for encoding in ("utf-16-le", "utf-16-be"):
        bare = tmp_path / f"bare-{encoding}.tsv"
        bare.write_bytes(text.encode(encoding))
        with pytest.raises(InputError) as error:
            read_samples(bare)
        assert str(error.value) == (f"{bare}: the sample sheet holds NUL bytes, as UTF-16 text without a byte order "
                                    "mark does; save it as UTF-8 text")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case_id,image\na,x.nii.gz\n", "lacks the columns case_id, image (is it tab-separated?)"),
        # one column missing, one repeated: the count words take the singular ("column(s) image appear twice")
        ("image\treference\nx.nii.gz\tr.nii.gz\n", ":1: header lacks the column case_id; found image, reference"),
        ("case_id\timage\na\tx.nii.gz\nA\ty.nii.gz\n", "case_id 'A' repeats line 2"),
        ("case_id\timage\na/b\tx.nii.gz\n", "case_id 'a/b' must be"),
        ("case_id\timage\n-a\tx.nii.gz\n", "case_id '-a' must be"),
        ("case_id\timage\na b\tx.nii.gz\n", ":2: case_id 'a b' must be 1-128 ASCII letters"),  # also through Snakemake
        # 'ä' is a letter: the message must not say letters are allowed and then refuse one
        ("case_id\timage\np\u00e4tient\tx.nii.gz\n", "case_id 'p\u00e4tient' must be 1-128 ASCII letters (A-Z, a-z)"),
        ("case_id\timage\treference\na\t\tr.nii.gz\n", ":2: the image cell is empty"),
        ("case_id\timage\na\tx.nii.gz\tz\n", ":2: 3 cells but the header has 2 columns"),
        # tabs turned into spaces by an editor: it said "the image cell is empty" of a line that names the image
        ("case_id\timage\na    x.nii.gz\n", ":2: the line has no tab between its cells (is it tab-separated?); the "
                                             "header has 2 columns"),
        ("case_id\timage\n", "has a header but no cases"),
        # a header written as a comment was skipped, and the first case taken for the header
        ("# cohort 1\n#case_id\timage\na\tx.nii.gz\n", ":3: header lacks the columns case_id, image (line 2 is the "
                                                       "header, read as a comment: remove its '#'); found a, x.nii.gz"),
        ("# only a comment\n", "the sample sheet is empty"),
        ("case_id\timage\timage\na\tx\ty\n", ":1: column image appears twice in the header"),
        ("case_id\timage\timage\treference\treference\na\tx\ty\tr\ts\n",
         ":1: columns image, reference appear twice in the header"),
        ("case_id\t\timage\na\tb\tx\n", ":1: column 2 of the header has no name"),  # its cells were dropped
        # folders Windows cannot hold: results copied to a share failed there, long after the run
        ("case_id\timage\nNUL\tx.nii.gz\n", ":2: case_id 'NUL' is a Windows device name: results named after it "
                                              "cannot be copied to a Windows share or disk; rename the case"),
        ("case_id\timage\ncom1.scan\tx.nii.gz\n", "case_id 'com1.scan' is a Windows device name"),
        ("case_id\timage\ncase7.\tx.nii.gz\n", "case_id 'case7.' ends in a dot, which Windows drops from a name"),
        # a misspelt optional column: its cells were ignored, every case run unscored without a word
        ("case_id\timage\trefernce\na\tx.nii.gz\tr.nii.gz\n",
         ":1: column 'refernce' of the header is not one medseg reads; did you mean 'reference'? (its cells would be "
         "ignored: rename the column)"),
        ("case_id\timage\tReference\na\tx.nii.gz\tr.nii.gz\n", ":1: column 'Reference' of the header is not one"),
        ("case_id\timage\tSeries\na\tx\t3\n", "column 'Series' of the header is not one medseg reads; did you "
                                                  "mean 'series'?"),
        # the reference as other tools name it: read as another column, every case ran unscored without a word
        ("case_id\timage\tlabel\na\tx.nii.gz\tr.nii.gz\n",
         ":1: column 'label' of the header is not one medseg reads, and its cells name files: if they are the cases' "
         "reference labels, name the column 'reference' (as named, they would be ignored and every case run unscored)"),
        *((f"case_id\timage\t{name}\na\tx.nii.gz\t\nb\ty.nii.gz\t{cell}\n", f":1: column '{name}' of the header is "
           "not one medseg reads, and its cells name files")
          for name, cell in (("labels", "labels/b.nii.gz"), ("mask", "b_mask.nii"), ("ref", "C:\\refs\\b.nii.gz"),
                             ("gt", "b.dcm"), ("GT", "b.NII.GZ"), ("ground_truth", "/gt/b"),
                             ("Ground Truth", "../gt/b"), ("groundtruth", "b.nii.gz"), ("seg", "b_seg.nii.gz"),
                             ("masks", "./b"))),
    ],
)
def test_bad_sheets_are_refused_with_the_line(tmp_path, text, message):
    sheet = _sheet(tmp_path, text)
    with pytest.raises(InputError) as caught:
        read_samples(sheet)
    assert message in str(caught.value)
    assert str(sheet) in str(caught.value)


def test_other_columns_of_a_sheet_are_ignored(tmp_path):
    sheet = _sheet(tmp_path, "case_id\timage\treference\tseries_description\tsex\tnotes\n"
                             "a\tx.nii.gz\tr.nii.gz\tT1 sag\tF\trescanned\n")
    assert [(s.case_id, s.image, s.reference) for s in read_samples(sheet)] == [
        ("a", tmp_path / "x.nii.gz", tmp_path / "r.nii.gz")]


@pytest.mark.parametrize("column", ["series_id", "seriesuid", "series_no", "reference_old", "reference2",
                                    "reference_v2", "old_reference"])
def test_a_column_that_names_a_known_one_and_more_is_another_column(tmp_path, column):
    """Close to a known column by spelling, but a name of its own (a series' id kept for bookkeeping, an older
    reference): the sheet was refused as if the column were misspelt ("did you mean 'series'?")."""
    sheet = _sheet(tmp_path, f"case_id\timage\t{column}\na\tx.nii.gz\t7\n")
    assert [(s.case_id, s.image, s.reference, s.series) for s in read_samples(sheet)] == [
        ("a", tmp_path / "x.nii.gz", None, None)]


@pytest.mark.parametrize("text", [
    "case_id\timage\tlabel\na\tx.nii.gz\tAD\nb\ty.nii.gz\t\n",  # a diagnosis, not a file
    "case_id\timage\treference\tlabel\na\tx.nii.gz\tr.nii.gz\told/r.nii.gz\n",  # beside the reference column
    "case_id\timage\tlabel_notes\tseg_v1\tmask2\na\tx.nii.gz\tsee labels/x.nii.gz\tv1/x.nii.gz\tm.nii\n",
])
def test_a_column_named_as_other_tools_name_the_reference_is_another_column_where_it_names_no_file(tmp_path, text):
    """A label column of a diagnosis, one beside a reference column, or a name that holds one and more is read as
    another column, as before: only a reference column named otherwise, whose cells name files, is refused."""
    sheet = _sheet(tmp_path, text)
    assert [(s.case_id, s.reference) for s in read_samples(sheet)][0] == (
        "a", tmp_path / "r.nii.gz" if "\treference" in text else None)


def test_a_label_column_of_words_with_a_slash_is_another_column(tmp_path):
    """A diagnosis written with a slash (AD/MCI) or a missing value written n/a names no file: the sheet was refused
    as if the column held the cases' references."""
    sheet = _sheet(tmp_path, "case_id\timage\tlabel\na\tx.nii.gz\tAD/MCI\nb\ty.nii.gz\tn/a\nc\tz.nii.gz\tN/A\n")
    assert [(s.case_id, s.reference) for s in read_samples(sheet)] == [("a", None), ("b", None), ("c", None)]


def test_a_reference_column_named_otherwise_that_names_a_file_without_extension_is_refused(tmp_path):
    """A SEG file named without extension (gt/b), there beside the sheet, is a file the column names."""
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "b").write_bytes(b"")
    sheet = _sheet(tmp_path, "case_id\timage\tgt\nb\ty.nii.gz\tgt/b\n")
    with pytest.raises(InputError) as caught:
        read_samples(sheet)
    assert str(caught.value) == (
        f"{sheet}:1: column 'gt' of the header is not one medseg reads, and its cells name files: if they are the "
        "cases' reference labels, name the column 'reference' (as named, they would be ignored and every case run "
        "unscored); if they are other files (brain masks, say), give the column a name of its own (brain_mask)")


@pytest.mark.parametrize("cell", ["b_aseg.mgz", "b.hdr", "b.mgh", "b.nrrd", "b.nhdr", "b.NII.BZ2"])
def test_a_reference_column_named_otherwise_of_bare_image_names_other_than_nifti_is_refused(tmp_path, cell):
    """A gt column naming FreeSurfer's .mgz, an Analyze .hdr or another image beside the sheet, without a folder,
    was read as another column (only .nii, .nii.gz and .dcm counted as files): every case ran unscored."""
    sheet = _sheet(tmp_path, f"case_id\timage\tgt\nb\ty.nii.gz\t{cell}\n")
    with pytest.raises(InputError) as caught:
        read_samples(sheet)
    assert str(caught.value).startswith(f"{sheet}:1: column 'gt' of the header is not one medseg reads, and its "
                                        "cells name files: if they are the cases' reference labels, name the column "
                                        "'reference'")


def test_a_column_of_other_files_named_as_a_reference_is_refused_with_the_way_to_keep_it(tmp_path):
    """A mask column of brain masks, read before as another column, is refused as a reference named otherwise: the
    line said only to rename it 'reference', not how to keep a column of other files."""
    sheet = _sheet(tmp_path, "case_id\timage\tmask\na\tx.nii.gz\tmasks/x_brain.nii.gz\n")
    with pytest.raises(InputError) as caught:
        read_samples(sheet)
    assert str(caught.value).endswith("; if they are other files (brain masks, say), give the column a name of its "
                                      "own (brain_mask)")
    renamed = _sheet(tmp_path, "case_id\timage\tbrain_mask\na\tx.nii.gz\tmasks/x_brain.nii.gz\n")
    assert [(s.case_id, s.reference) for s in read_samples(renamed)] == [("a", None)]


def test_missing_sheet(tmp_path, monkeypatch):
    with pytest.raises(InputError) as caught:
        read_samples(tmp_path / "nope.tsv")
    assert str(caught.value) == f"{tmp_path / 'nope.tsv'}: no such sample sheet"
    # a relative path (samples: ../sheet.tsv in a --configfile elsewhere) says where it was looked for
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as caught:
        read_samples("../nope.tsv")
    assert str(caught.value) == f"../nope.tsv: no such sample sheet (a relative path, taken from the folder {tmp_path})"


def test_batches(tmp_path):
    lines = "".join(f"c{i}\tc{i}.nii.gz\n" for i in range(7))
    samples = read_samples(_sheet(tmp_path, "case_id\timage\n" + lines))
    assert list(batches(samples, 1)) == [f"c{i}" for i in range(7)]
    jobs = batches(samples, 3)
    assert list(jobs) == ["batch001", "batch002", "batch003"]
    assert [[s.case_id for s in b] for b in jobs.values()] == [["c0", "c1", "c2"], ["c3", "c4", "c5"], ["c6"]]
    with pytest.raises(InputError):
        batches(samples, 0)


def test_jobs_of_an_earlier_run_keep_their_cases(tmp_path):
    """A row taken out or added changes its own job only; positional cutting moved every later case."""
    lines = "".join(f"c{i}\tc{i}.nii.gz\n" for i in range(7))
    samples = read_samples(_sheet(tmp_path, "case_id\timage\n" + lines))

    def ids(jobs):
        return {name: [s.case_id for s in cases] for name, cases in jobs.items()}

    earlier = ids(batches(samples, 3))
    assert ids(batches(samples[1:], 3, earlier)) == {"batch001": ["c1", "c2"], "batch002": ["c3", "c4", "c5"],
                                                     "batch003": ["c6"]}
    added = [samples[0], *read_samples(_sheet(tmp_path, "case_id\timage\nn0\tn.nii.gz\nn1\tm.nii.gz\n")),
             *samples[1:]]
    assert ids(batches(added, 3, earlier)) == {**earlier, "batch004": ["n0", "n1"]}
    # jobs larger than cases_per_job now (another setting made them) are cut again; one-case jobs ignore them
    assert ids(batches(samples, 2, earlier)) == {"batch003": ["c6"], "batch004": ["c0", "c1"],
                                                 "batch005": ["c2", "c3"], "batch006": ["c4", "c5"]}
    assert list(batches(samples, 1, earlier)) == [f"c{i}" for i in range(7)]
    # nothing of these is kept; new jobs are numbered after every earlier one (batch009's record lists other cases)
    assert ids(batches(samples, 3, {"c0": ["c0"], "batch009": ["gone"]})) == {
        "batch010": ["c0", "c1", "c2"], "batch011": ["c3", "c4", "c5"], "batch012": ["c6"]}
    removed = {**earlier, "batch003": ["c6"]}  # every case of the last job taken out, one added: not batch003
    assert list(batches([*samples[:6], *added[1:3]], 3, removed))[-1] == "batch004"


def test_some_names_cuts_a_long_list_short():
    from medseg.cohort import some_names

    assert some_names(["a"]) == "a" and some_names(list("abc"), 3) == "a, b, c"
    assert some_names([f"c{i}" for i in range(200)]) == "c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, … and 190 more (200)"


def test_the_readmes_example_sheet_is_read_as_it_says(tmp_path):
    """docs/cohorts.md's *Cohorts with Snakemake* (then the README's) sent a newcomer to the dense *Sample sheet*
    section to learn what a sheet looks like; its own cohort's command now comes after a short example, which must be
    a sheet medseg reads: tab-separated, paths relative to its folder, an empty reference cell for a case that is
    not scored."""
    from documents import read

    readme = read("docs/cohorts.md")
    section = readme[readme.index("# Cohorts with Snakemake\n"):readme.index("\n## What runs\n")]
    block = section[section.index("\n    case_id\t"):].split("\n\n", 1)[0]
    text = "".join(line[4:] + "\n" for line in block.strip("\n").splitlines())
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    for name in ("images/hippocampus_004.nii.gz", "labels/hippocampus_004.nii.gz", "images/hippocampus_017.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    samples = read_samples(_sheet(tmp_path, text))
    assert [(s.case_id, s.image, s.reference) for s in samples] == [
        ("hip004", tmp_path / "images" / "hippocampus_004.nii.gz", tmp_path / "labels" / "hippocampus_004.nii.gz"),
        ("hip017", tmp_path / "images" / "hippocampus_017.nii.gz", None)]
