"""A library message names a setting as its caller gives it: a Python caller's keyword argument
(``overwrite=True``), the command line's option (``--overwrite``) while a command runs."""

from __future__ import annotations

from medseg.settings_named import ANY, named_as, same_run_with, setting, setting_choices


def test_a_setting_is_named_as_the_keyword_argument_unless_the_command_line_names_it():
    assert (setting("overwrite"), setting("device", "cpu"), setting("series", ANY)) == (
        "overwrite=True", "device='cpu'", "series=...")
    assert setting_choices("device", "cpu", "auto") == "device='cpu' or 'auto'"
    assert setting_choices("device", "mps", "cpu", "auto") == "device='mps', 'cpu' or 'auto'"
    with named_as({"overwrite": "--overwrite", "device": "--device", "series": "--series"}):
        assert (setting("overwrite"), setting("device", "cpu"), setting("series", ANY)) == (
            "--overwrite", "--device cpu", "--series")
        assert setting_choices("device", "cpu", "auto") == "--device cpu or auto"
        assert setting_choices("device", "mps", "cpu", "auto") == "--device mps, cpu or auto"
        assert setting("resume") == "resume=True"  # no option of the command line's: the argument
        with named_as({}):
            assert setting("overwrite") == "overwrite=True"
        assert setting("overwrite") == "--overwrite"
    assert setting("overwrite") == "overwrite=True"  # the names before it back
    assert same_run_with("resume") == "the same call with resume=True"
    with named_as({"resume": "--resume"}):
        assert same_run_with("resume") == "the same command with --resume"

