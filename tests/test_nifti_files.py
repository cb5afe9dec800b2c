"""The files of a NIfTI or Analyze image (medseg.io.nifti_files, medseg.io.pairs): bytes that do not hold what the
header says, told in one line (cut short wherever the cut falls, a vox_offset inside the header, voxels of another
type or shape); the two files of a pair (the missing half named, the content hash covering both and an SPM .mat, a
gzipped pair without a .mat); a folder named ~ read and written where it is, not in $HOME."""

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ImageReadError
from medseg.inference import Segmenter
from medseg.io.nifti import read_nifti
from medseg.package import load_package
from medseg.segment import segment_case
from medseg.synthetic import make_phantom


def test_half_of_a_pair_names_the_missing_half(tmp_path):
    """A .hdr without its .img was "truncated or corrupt image data ([Errno 2] …)"; an .img alone was "not a NIfTI
    image (Cannot work out file type …)"."""
    from medseg.errors import ImageReadError

    nib.save(nib.Nifti1Pair(make_phantom((16, 16, 4), seed=1).image, np.eye(4)), tmp_path / "a.img")
    (tmp_path / "b.hdr").write_bytes((tmp_path / "a.hdr").read_bytes())
    (tmp_path / "c.img").write_bytes((tmp_path / "a.img").read_bytes())
    with pytest.raises(ImageReadError, match=rf"^{tmp_path / 'b.hdr'}: its image file b.img, which holds the voxels "
                                             r"of this Analyze or NIfTI pair, is missing$"):
        read_nifti(tmp_path / "b.hdr")
    with pytest.raises(ImageReadError, match=rf"^{tmp_path / 'c.img'}: the voxels of an Analyze or NIfTI pair without "
                                             r"its header c.hdr, which says how to read them; give the .hdr, with the "
                                             r".img beside it$"):
        read_nifti(tmp_path / "c.img")
    assert read_nifti(tmp_path / "a.img").shape == (16, 16, 4)  # the .img of a whole pair is read


def test_a_pairs_content_hash_covers_header_and_image(tmp_path):
    """Before, ``source_sha256`` (the sidecar's ``input_sha256``) hashed only the file named: an edited ``.hdr``
    kept the hash of its ``.img``, and two scans with byte-identical headers shared one (flagged duplicate_input)."""
    from medseg.cohort.records import path_signature
    from medseg.io.atomic import sha256_of

    first = make_phantom((16, 16, 4), seed=1).image
    for name, array in (("a", first), ("b", first[::-1].copy())):
        nib.save(nib.Nifti1Pair(array, np.diag([1.0, 1.0, 2.0, 1.0])), tmp_path / f"{name}.img")
    assert (tmp_path / "a.hdr").read_bytes() == (tmp_path / "b.hdr").read_bytes()
    digests = {name: read_nifti(tmp_path / name).source_sha256 for name in ("a.hdr", "a.img", "b.hdr")}
    assert digests["a.hdr"] == digests["a.img"] == sha256_of([tmp_path / "a.hdr", tmp_path / "a.img"])
    assert digests["a.hdr"] != digests["b.hdr"]
    before = path_signature(tmp_path / "a.hdr")
    image = nib.load(tmp_path / "a.hdr")
    moved = image.affine.copy()
    moved[0, 3] += 25.0
    array = image.get_fdata().astype(np.float32)  # a copy: the file is rewritten below
    nib.save(nib.Nifti1Pair(array, moved), tmp_path / "a.img")  # both files rewritten
    (tmp_path / "b.img").write_bytes((first * 2).astype("<f4").tobytes(order="F"))  # only b's image file changes
    assert read_nifti(tmp_path / "a.hdr").source_sha256 != digests["a.hdr"]
    assert read_nifti(tmp_path / "b.hdr").source_sha256 != digests["b.hdr"]
    assert path_signature(tmp_path / "a.hdr") != before and len(before) == 2  # both files' size and time
    assert path_signature(tmp_path / "b.nii.gz") == "missing"
    nib.save(nib.Nifti1Image(first, np.eye(4)), tmp_path / "single.nii.gz")
    assert read_nifti(tmp_path / "single.nii.gz").source_sha256 == sha256_of(tmp_path / "single.nii.gz")
    # a .mat beside a NIfTI pair is not read, so it is not hashed; an SPM Analyze image's .mat is
    digest = read_nifti(tmp_path / "b.hdr").source_sha256
    (tmp_path / "b.mat").write_bytes(b"someone's MATLAB data")
    assert read_nifti(tmp_path / "b.hdr").source_sha256 == digest
    import scipy.io

    nib.save(nib.AnalyzeImage(first, np.eye(4)), tmp_path / "spm.img")
    scipy.io.savemat(tmp_path / "spm.mat", {"mat": np.diag([2.0, 2.0, 2.0, 1.0])})
    files = [tmp_path / f"spm.{ext}" for ext in ("hdr", "img", "mat")]
    assert read_nifti(tmp_path / "spm.hdr").source_sha256 == sha256_of(files)


CUT = "the file was cut short (an interrupted copy or download?)"
ENDS_EARLY = f"truncated image data (its gzip stream ends early); {CUT}"
DECLARED = "its header declares 20×22×12 voxels of int16 (10.6 kB) from byte 352, but the file holds"


@pytest.mark.parametrize("where, cut, says", [
    ("gzip header", 5, f"a gzip file of 5 bytes that ends before any of its content; {CUT}"),
    ("nifti header", 70, f"truncated header (46 of 348 bytes); {CUT}"),
    ("voxels", "half", ENDS_EARLY),
    ("gzip trailer", -4, ENDS_EARLY),
    ("last byte", -1, ENDS_EARLY),
    ("plain header", 100, f"truncated header (100 of 348 bytes); {CUT}"),
    ("plain voxels", "half", f"{DECLARED} 5456 bytes; {CUT}, or its header is corrupt"),
    ("plain last byte", -1, f"{DECLARED} 10911 bytes; {CUT}, or its header is corrupt"),
])
def test_a_file_cut_short_is_told_so_wherever_the_cut_falls(tmp_path, where, cut, says):
    """A .nii.gz cut inside its voxels or its gzip trailer was "truncated or corrupt image data (gzip: Compressed file
    ended before the end-of-stream marker was reached)", where one cut inside its header was "the file was cut short
    (an interrupted copy or download?)": one wording, naming the file, wherever the cut falls."""
    labels = np.random.default_rng(0).integers(0, 4, size=(20, 22, 12)).astype(np.int16)
    whole = tmp_path / ("whole.nii" if where.startswith("plain") else "whole.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), whole)
    data = whole.read_bytes()
    bad = tmp_path / f"cut{''.join(whole.suffixes)}"
    bad.write_bytes(data[:len(data) // 2] if cut == "half" else data[:cut])
    with pytest.raises(ImageReadError) as caught:
        read_nifti(bad)
    assert str(caught.value) == f"{bad}: {says}"


def test_a_gzipped_analyze_pair_without_an_spm_mat_is_read(tmp_path, make_package):
    """nibabel's file map of an Analyze image names an SPM .mat.gz whether or not one exists: opening it to check
    its gzip stream refused every such pair ("cannot read header (No such file ... .mat.gz)"); its outputs were
    named ``pair.hdr.gz_seg.nii.gz``."""
    from medseg.io.pairs import image_files
    from medseg.volume import stem

    array = make_phantom((24, 24, 6), seed=5).image
    nib.save(nib.AnalyzeImage(array, np.diag([1.0, 1.0, 2.0, 1.0])), tmp_path / "pair.hdr.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pair.hdr.gz", "pair.img.gz"]
    np.testing.assert_array_equal(read_nifti(tmp_path / "pair.hdr.gz").array, array)
    outputs = segment_case(tmp_path / "pair.hdr.gz", Segmenter(load_package(make_package()), device="cpu"),
                           out_dir=tmp_path / "out")
    assert outputs.segmentation.name == "pair_seg.nii.gz" and stem("a.img.gz") == "a" and stem("b.mgh") == "b"
    (tmp_path / "pair.mat.gz").write_bytes(gzip.compress(b"SPM's orientation"))
    assert image_files(tmp_path / "pair.img.gz") == [tmp_path / f"pair.{ext}.gz" for ext in ("hdr", "img", "mat")]
    (tmp_path / "pair.mat.gz").unlink()
    (tmp_path / "pair.img.gz").unlink()
    with pytest.raises(Exception, match=r"pair.hdr.gz: its image file pair.img.gz, which holds the voxels of this "
                                        r"Analyze or NIfTI pair, is missing$"):
        read_nifti(tmp_path / "pair.hdr.gz")


def _rewrite_header(path, **fields):
    """``path``'s header with ``fields`` changed, its voxel bytes left as they are (what a broken writer makes)."""
    raw = bytearray(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(open(path, "rb"))
    for key, value in fields.items():
        header[key] = value
    raw[:348] = header.binaryblock
    path.write_bytes(bytes(raw))


def test_a_vox_offset_inside_the_header_is_refused(tmp_path):
    """vox_offset 0 in a one-file NIfTI: nibabel read the header's own bytes as voxels (every voxel moved by 176
    places), and the case was segmented with exit 0; 100 was refused by nibabel, 0 not."""
    phantom = make_phantom((24, 20, 6), seed=3)
    path = tmp_path / "off.nii"
    nib.save(nib.Nifti1Image((phantom.image * 1000).astype(np.int16), np.eye(4)), str(path))
    _rewrite_header(path, vox_offset=0)
    with pytest.raises(ImageReadError, match=r"off.nii: corrupt header \(vox_offset 0 points into the header, which "
                                             r"takes the first 352 bytes of the file\)$"):
        read_nifti(path)
    gz = tmp_path / "off.nii.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ImageReadError, match="off.nii.gz: corrupt header .vox_offset 0 points into the header"):
        read_nifti(gz)
    # an Analyze / NIfTI pair keeps its voxels in the .img: offset 0 is the norm there
    nib.save(nib.Nifti1Pair((phantom.image * 1000).astype(np.int16), np.eye(4)), str(tmp_path / "pair.hdr"))
    assert nib.load(str(tmp_path / "pair.hdr")).header["vox_offset"] == 0
    assert read_nifti(tmp_path / "pair.hdr").array.shape == (24, 20, 6)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_voxels_of_another_type_or_shape_than_the_header_says_are_refused(tmp_path, suffix):
    """float32 voxels under an int16 header, or a 4D file whose dim[0] was edited to 3, were read as garbage or as
    the first volume, with exit 0: the file holds a whole multiple of the data its header declares."""
    phantom = make_phantom((24, 20, 6), seed=3)
    plain = tmp_path / "typed.nii"
    nib.save(nib.Nifti1Image(phantom.image.astype(np.float32), np.eye(4)), str(plain))
    _rewrite_header(plain, datatype=4, bitpix=16)  # int16
    four = tmp_path / "four.nii"
    nib.save(nib.Nifti1Image(np.stack([phantom.image] * 3, axis=-1).astype(np.float32), np.eye(4)), str(four))
    _rewrite_header(four, dim=[3, 24, 20, 6, 3, 1, 1, 1])
    for path, times, declared in ((plain, 2, "5760 bytes for shape (24, 20, 6) of int16"),
                                  (four, 3, "11520 bytes for shape (24, 20, 6) of float32")):
        if suffix == ".nii.gz":
            path = path.rename(path.with_name(path.name + ".gz"))
            path.write_bytes(gzip.compress(path.read_bytes()))
        with pytest.raises(ImageReadError, match=rf"{path.name}: corrupt header: the file holds {times} times the "
                                                 rf"voxel data its header declares \({re.escape(declared)}\); its "
                                                 r"datatype or dimensions are wrong$"):
            read_nifti(path)


def test_a_literal_tilde_folder_is_read_and_written_where_it_is_not_in_home(tmp_path, make_package, monkeypatch):
    """nibabel expands a leading ~ of a name: `medseg infer scan.mgh -o '~/out/'` (quoted, so the shell left it a
    folder named ~) wrote its temporary segmentation into $HOME/out and failed ("cannot write (No such file or
    directory)"), leaving it there; an MGH input named ~/scan.mgh was read from $HOME."""
    package = load_package(make_package())
    home, work = tmp_path / "home", tmp_path / "work"
    (home / "out").mkdir(parents=True)
    (work / "~").mkdir(parents=True)
    phantom = make_phantom((24, 24, 8), seed=2)
    nib.save(nib.MGHImage(phantom.image, np.eye(4)), work / "~" / "scan.mgh")
    nib.save(nib.MGHImage(np.zeros((8, 8, 8), np.float32), np.eye(4)), home / "scan.mgh")  # another grid
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    outputs = segment_case(Path("~/scan.mgh"), Segmenter(package, device="cpu"), out_dir=Path("~/out"))
    assert outputs.segmentation == Path("~/out/scan_seg.nii.gz")
    assert nib.load(work / "~" / "out" / "scan_seg.nii.gz").shape == (24, 24, 8)
    assert list((home / "out").iterdir()) == []
