"""medseg.package_weights: weights files cut short, or left unfinished beside the package, named so."""

import shutil

import pytest

from medseg.errors import ModelPackageError
from medseg.package import load_package


def test_weights_an_interrupted_copy_cut_short_are_named_so(make_package):
    """scp writes in place: a copy cut off leaves the start of the weights, which read only as "SHA-256 … does not
    match …; the file is corrupt or was replaced". Weights of their full length but damaged keep that message."""
    path = make_package()
    weights = path / "weights.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[:20000])
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{weights}: cut short: 20,000 bytes of the {len(whole):,} its header declares (an "
                               "interrupted copy?); copy the package again")
    for damaged in (whole[:20000] + bytes(len(whole) - 20000), bytes(len(whole)), bytes(7) + whole[7:]):
        weights.write_bytes(damaged)
        with pytest.raises(ModelPackageError, match=r"SHA-256 \w+… does not match \w+… recorded in model.json; the "
                                                    r"file is corrupt or was replaced$"):
            load_package(path)


def test_weights_cut_inside_their_own_header_are_named_cut_short(make_package):
    """A copy cut off before the end of the weights' header (file shorter than 8 + the header length it states)
    was told as a SHA-256 mismatch; it is cut short, of at least the header's own length."""
    path = make_package()
    weights = path / "weights.safetensors"
    whole = weights.read_bytes()
    length = int.from_bytes(whole[:8], "little")
    weights.write_bytes(whole[:100])
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{weights}: cut short: 100 bytes of at least the {8 + length:,} its header declares "
                               "(an interrupted copy?); copy the package again")


@pytest.mark.parametrize(("held", "said"), [
    (0, "empty (0 bytes)"),
    (1, "cut short: 1 byte, fewer than the 8 of the header length a safetensors file starts with"),
    (7, "cut short: 7 bytes, fewer than the 8 of the header length a safetensors file starts with"),
])
def test_weights_shorter_than_their_header_length_are_named_cut_short(make_package, held, said):
    """A copy cut off in the weights' first 8 bytes (or an empty file: a copy that wrote nothing) has no header length
    to compare with, and was told as "SHA-256 … does not match …; the file is corrupt or was replaced", where longer
    cut copies say "cut short"."""
    path = make_package()
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:held])
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == f"{weights}: {said} (an interrupted copy?); copy the package again"


def test_a_corrupt_header_length_is_not_read_into_memory(tmp_path, monkeypatch):
    """A damaged length field in a large weights file stated a "header" of GBs, which was read whole to look for a
    cut; one past safetensors' own cap (100 MB) is corrupt and is not read."""
    import medseg.package_weights as package_weights

    weights = tmp_path / "weights.safetensors"
    with open(weights, "wb") as handle:  # sparse: 300 MB on disk in name only
        handle.write((250_000_000).to_bytes(8, "little"))
        handle.truncate(300_000_000)
    parsed = []
    monkeypatch.setattr(package_weights.json, "loads", lambda text, *a, **k: parsed.append(len(text)))
    assert package_weights._short_of(weights) is None
    assert parsed == []


@pytest.mark.parametrize("partial", ["weights.safetensors.part", "weights.safetensors.crdownload",
                                     ".~tmp~/weights.safetensors", ".weights.safetensors.aB3x9Z"])
def test_weights_missing_beside_an_unfinished_copy_are_named_so(make_package, partial):
    """rsync --partial / --delay-updates, its hidden temporary file, a browser's download: the weights lay beside
    under another name, and loading said only "no such weights file"."""
    path = make_package()
    weights = path / "weights.safetensors"
    (path / partial).parent.mkdir(exist_ok=True)
    weights.rename(path / partial)
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{weights}: no such weights file; {partial!r} beside it: a copy or download that did "
                               "not finish; copy the package again")
    (path / partial).unlink()
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == f"{weights}: no such weights file"


@pytest.mark.parametrize("renamed", ["weights (1).safetensors", "Weights.safetensors", "weights-2.safetensors"])
def test_weights_missing_beside_another_safetensors_file_name_it(make_package, renamed):
    """A browser saves a second download as "weights (1).safetensors"; a copy through a case-insensitive disk or a
    hand rename gives "Weights.safetensors": the weights lay beside, under another name, and loading said only "no
    such weights file", leaving the colleague to guess. The file found is named, with the name model.json wants."""
    path = make_package()
    weights = path / "weights.safetensors"
    weights.rename(path / renamed)
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{weights}: no such weights file; the folder holds {renamed!r}: renamed on the way? "
                               "rename it to 'weights.safetensors', as model.json's weights.file names it (its SHA-256 "
                               "is checked on loading)")


def test_weights_missing_beside_several_safetensors_files_name_them(make_package):
    """Two downloads of the weights ("weights (1).safetensors", "weights (2).safetensors") beside a package missing
    its own: loading said only "no such weights file", as if nothing lay there; one alone was named."""
    path = make_package()
    weights = path / "weights.safetensors"
    weights.rename(path / "weights (2).safetensors")
    shutil.copy(path / "weights (2).safetensors", path / "weights (1).safetensors")
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{weights}: no such weights file; the folder holds 'weights (1).safetensors', "
                               "'weights (2).safetensors': renamed on the way? rename the one meant to "
                               "'weights.safetensors', as model.json's weights.file names it (its SHA-256 is checked "
                               "on loading)")
