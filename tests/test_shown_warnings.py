"""medseg.shown_warnings: medseg's warnings on stderr, one line each, for a program that configures no logging."""

from __future__ import annotations

import logging

from conftest import no_logging_configured

from medseg.shown_warnings import show_warnings


def test_warnings_and_errors_are_one_line_after_their_level_from_one_handler_however_often_asked(capsys):
    """A script configuring no logging heard none of medseg's warnings once its loggers had a NullHandler."""
    with no_logging_configured():
        assert show_warnings() is True
        assert show_warnings() is False and show_warnings(labelled=False) is False  # the one handler stays
        assert len(logging.getLogger("medseg").handlers) == 2  # its NullHandler and the one added
        logging.getLogger("medseg.io.nifti").info("an info line is not shown")
        logging.getLogger("medseg.io.nifti").warning("%s: not gzip-compressed despite its .gz name", "a.nii.gz")
        logging.getLogger("medseg.cohort.run").error("b: failed at infer")
    assert capsys.readouterr() == ("", "warning: a.nii.gz: not gzip-compressed despite its .gz name\n"
                                       "error: b: failed at infer\n")


def test_the_workflow_planning_reads_the_bare_message(capsys):
    with no_logging_configured():
        assert show_warnings(labelled=False) is True
        logging.getLogger("medseg.package").warning("pkg calls itself 'phantom'")
    assert capsys.readouterr().err == "pkg calls itself 'phantom'\n"


def test_a_program_that_configured_logging_is_left_as_it_is(capsys):
    """Here pytest has configured logging (the root logger has its handlers): they take medseg's warnings."""
    medseg_log = logging.getLogger("medseg")
    before = medseg_log.handlers[:]
    assert logging.getLogger().handlers
    assert show_warnings() is False
    assert medseg_log.handlers == before
    logging.getLogger("medseg.io.nifti").warning("taken by the program's own handler")
    assert capsys.readouterr().err == ""


def test_a_control_character_in_a_file_name_leaves_the_warning_one_line_as_the_command_writes_it(capsys):
    """A line break or terminal escape in a file name split the warning into lines that read as others (or drove
    the terminal); the ``medseg`` command writes them escaped, and so do the scripts and the workflow's planning."""
    from medseg.cli.options import escaped_line

    name = "a\nerror: b\r\u2028\x1b[2J.nii.gz"
    with no_logging_configured():
        assert show_warnings() is True
        logging.getLogger("medseg.io.nifti").warning("%s: not gzip-compressed", name)
    assert capsys.readouterr().err == "warning: a\\nerror: b\\r\\u2028\\x1b[2J.nii.gz: not gzip-compressed\n"
    with no_logging_configured():
        assert show_warnings(labelled=False) is True
        logging.getLogger("medseg.package").warning("%s: calls itself 'phantom'", name)
    assert capsys.readouterr().err == f"{escaped_line(name)}: calls itself 'phantom'\n"


def test_a_program_that_configured_the_medseg_logger_alone_hears_each_warning_once(capsys):
    """A program that gave only the ``medseg`` logger a handler of its own got a second one: each warning twice."""
    import io

    own = io.StringIO()
    handler = logging.StreamHandler(own)
    handler.setFormatter(logging.Formatter("own: %(message)s"))
    with no_logging_configured():
        logging.getLogger("medseg").addHandler(handler)
        try:
            assert show_warnings() is False
            logging.getLogger("medseg.io.nifti").warning("a.nii.gz: not gzip-compressed")
        finally:
            logging.getLogger("medseg").removeHandler(handler)
    assert (own.getvalue(), capsys.readouterr().err) == ("own: a.nii.gz: not gzip-compressed\n", "")


def test_a_program_that_disabled_the_last_resort_handler_is_left_silent(capsys, monkeypatch):
    """``logging.lastResort = None``: the program asked for nothing of the logging it did not configure, and the
    handler that stands in for the last-resort one wrote medseg's warnings all the same."""
    monkeypatch.setattr(logging, "lastResort", None)
    with no_logging_configured():
        assert show_warnings() is False
        logging.getLogger("medseg.io.nifti").warning("a.nii.gz: not gzip-compressed")
    assert capsys.readouterr().err == ""


def test_a_warning_python_shows_is_not_told_again_by_the_handler(capsys):
    """What medseg also warns about through ``warnings.warn`` (:mod:`medseg.caller_warnings`), which Python shows on
    stderr itself, was told a second time by the handler show_warnings added: a script heard each such warning twice;
    where the program silences the category, it hears it from neither. Python shows it as the handler's lines read,
    ``warning: <message>`` (it read ``<file>:<line>: MedsegWarning: <message>`` and the caller's line of code below)."""
    import sys
    import warnings

    from medseg.caller_warnings import warn
    from medseg.errors import MedsegWarning

    def shown(message, category, filename, lineno, file=None, line=None):  # as Python shows it (pytest records)
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with no_logging_configured(), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown
        assert show_warnings() is True
        warn("a.nii.gz: unlike the images model m was trained on", logging.getLogger("medseg.segment"))
        logging.getLogger("medseg.io.nifti").warning("b.nii.gz: logged only")
        warnings.warn("another library's", UserWarning, stacklevel=1)  # shown as it was
        warnings.simplefilter("ignore", MedsegWarning)
        warn("c.nii.gz: silenced", logging.getLogger("medseg.segment"))
    err = capsys.readouterr().err
    assert err.startswith("warning: a.nii.gz: unlike the images model m was trained on\n"
                          "warning: b.nii.gz: logged only\n"), err
    assert "UserWarning: another library's" in err and "MedsegWarning" not in err and "c.nii.gz" not in err


def test_a_medseg_warning_in_a_script_is_one_line_however_its_message_reads(capsys):
    """A script's ``show_warnings()``: a MedsegWarning naming a file with a line break in its name is one escaped line,
    as the command writes it, the bare message for the workflow's planning; an "error" filter still raises it."""
    import warnings

    import pytest

    from medseg.caller_warnings import warn
    from medseg.errors import MedsegWarning

    with no_logging_configured(), warnings.catch_warnings():
        assert show_warnings() is True
        warn("odd\nname.nii.gz: a label image given as the input?", logging.getLogger("medseg.segment"))
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match="raised"):
            warn("raised", logging.getLogger("medseg.segment"))
    assert capsys.readouterr().err == "warning: odd\\nname.nii.gz: a label image given as the input?\n"
    with no_logging_configured(), warnings.catch_warnings():
        assert show_warnings(labelled=False) is True
        warn("p.nii.gz: planned", logging.getLogger("medseg.segment"))
    assert capsys.readouterr().err == "p.nii.gz: planned\n"
