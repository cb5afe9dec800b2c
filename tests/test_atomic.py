"""medseg.io.atomic: a set of outputs appears whole or not at all, and write failures name the output."""

from __future__ import annotations

import pytest

from medseg.errors import OutputExistsError, OutputWriteError
from medseg.io.atomic import atomic_paths


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_set_is_put_in_place_whole(tmp_path):
    targets = [tmp_path / "out" / "a_seg.nii.gz", tmp_path / "out" / "a_seg.json"]
    with atomic_paths(targets) as temps:
        for temp, text in zip(temps, ("image", "sidecar")):
            temp.write_text(text)
    assert [t.read_text() for t in targets] == ["image", "sidecar"]
    assert _names(tmp_path / "out") == ["a_seg.json", "a_seg.nii.gz"]  # no temporary or backup files left
    with pytest.raises(OutputExistsError, match="a_seg.nii.gz: output exists already; pass --overwrite"):
        with atomic_paths(targets):
            pass


def test_a_failed_rename_restores_the_previous_set(tmp_path):
    first, second = tmp_path / "a_seg.nii.gz", tmp_path / "a_seg.json"
    first.write_text("old image")
    second.write_text("old sidecar")
    with pytest.raises(OutputWriteError, match=rf"^{second}: cannot put the output in place \(.*\); no output of "
                                               "this set was changed$"):
        with atomic_paths([first, second], overwrite=True) as temps:
            temps[0].write_text("new image")
            temps[1].write_text("new sidecar")
            # after the check, before the renames: a folder with content takes the second output's place
            second.unlink()
            second.mkdir()
            (second / "keep").write_text("x")
    assert first.read_text() == "old image"  # the first output was put back, not left half-replaced
    assert second.is_dir() and _names(second) == ["keep"]
    assert _names(tmp_path) == ["a_seg.json", "a_seg.nii.gz"]


def test_a_write_error_inside_the_block_names_the_output(tmp_path):
    target = tmp_path / "a_seg.json"
    with pytest.raises(OutputWriteError, match=rf"^{target}: cannot write \(No such file or directory\)$"):
        with atomic_paths([target]) as (temp,):
            temp.parent.joinpath("gone").mkdir()
            open(temp.parent / "gone" / "x", "w").close()
            raise FileNotFoundError(2, "No such file or directory", str(temp))
    assert _names(tmp_path) == ["gone"]
