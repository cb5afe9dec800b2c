"""The JSON records medseg reads back (prediction sidecars, metrics, cohort, checkpoint and convert records) through
one reader: a file too large, nested too deeply, not an object, not UTF-8, or a folder or named pipe in its place is
what each caller does with a record it cannot use (None, a case made again, a one-line error), never a traceback,
a multi-GB read or a wait for a writer."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from medseg import jsonfile
from medseg.errors import InputError, MedsegError, TrainingError, first_line
from medseg.jsonfile import JsonFileError, json_error_text, read_json_object


def _checkpoint(tmp_path: Path) -> Path:
    return tmp_path / "model" / ".checkpoint" / "last.json"


def _folder(tmp_path: Path):
    from medseg.cohort.records import ResultsFolder

    return ResultsFolder(tmp_path / "results")


def _status(tmp_path):
    return _folder(tmp_path).status_path("c1", "infer"), lambda: _folder(tmp_path).status("c1", "infer")


def _attempts(tmp_path):
    return _folder(tmp_path).started_path("c1", "infer"), lambda: _folder(tmp_path).attempts("c1", "infer", "p")


def _crashes(tmp_path):
    return _folder(tmp_path).started_path("c1", "infer"), lambda: _folder(tmp_path).crashes("c1", "infer", "p", 100)


def _equivalents(tmp_path):
    return _folder(tmp_path).started_path("c1", "infer"), lambda: _folder(tmp_path).equivalents("c1", "infer", "p")


def _mark_started(tmp_path):
    folder = _folder(tmp_path)

    def call():  # the earlier attempts' memory comes from a readable record of the same work only
        folder.mark_started("c1", "infer", "p", 2, memory_mb=64)
        return json.loads(folder.started_path("c1", "infer").read_text())["memory_mb"]
    return folder.started_path("c1", "infer"), call


def _unscore(tmp_path):
    folder = _folder(tmp_path)
    return folder.failure("c1"), lambda: (folder.unscore("c1"), os.path.lexists(folder.failure("c1")))


def _forced_token(tmp_path):
    from medseg.cohort.forced_runs import FORCED_RECORD, redo_values

    def call():  # an earlier record of the same forcing gives its token; an unusable one a new token
        return redo_values(tmp_path, {"infer": None}, keep=False)["infer"] == "0123456789abcdef"
    return tmp_path / FORCED_RECORD, call


def _stopped_forced(tmp_path):
    from medseg.cohort.forced_runs import FORCED_RECORD, stopped_forced_run

    return tmp_path / FORCED_RECORD, lambda: stopped_forced_run(tmp_path)


def _batch_plan(tmp_path):
    from medseg.cohort.batch_plan import read_batch_plan

    return tmp_path / "jobs" / ".plan.json", lambda: read_batch_plan(tmp_path, 1)


def _changed_since_planned(tmp_path):
    from medseg.cohort.batch_plan import changed_since_planned
    from medseg.cohort.samples import Sample

    sample = Sample(case_id="c1", image=tmp_path / "c1.nii.gz")
    return tmp_path / "jobs" / ".plan.json", lambda: changed_since_planned(tmp_path, [sample])


def _recorded(tmp_path):
    from medseg.cohort.fingerprints import _recorded

    return tmp_path / "c1_seg.json", lambda: _recorded(tmp_path / "c1_seg.json", "device")


def _outdated_sidecar(tmp_path):
    from medseg.cohort.fingerprints import _outdated_sidecar

    folder = _folder(tmp_path)
    return folder.sidecar("c1"), lambda: _outdated_sidecar(folder, "c1", SimpleNamespace(label_codes={}))


def _snakelock(tmp_path):
    from medseg.cohort import snakelock

    state = tmp_path / ".snakemake"
    (state / "locks").mkdir(parents=True, exist_ok=True)
    (state / "locks" / "0.input.lock").write_text("x")
    return state / snakelock.RUNS / "run1.json", lambda: snakelock.release_stale_locks(state)


def _medseg_json(tmp_path):
    from medseg.segment import _medseg_json

    return tmp_path / "c1_metrics.json", lambda: _medseg_json(tmp_path / "c1_metrics.json", "medseg-metrics/1")


def _own_sidecar(tmp_path):
    from medseg.io.dicom import _own_sidecar

    return tmp_path / "ct.json", lambda: _own_sidecar(tmp_path / "ct.json")


def _checkpoint_epoch(tmp_path):
    from medseg.checkpoint import checkpoint_epoch

    return _checkpoint(tmp_path), lambda: checkpoint_epoch(tmp_path / "model")


def _planned_epochs(tmp_path):
    from medseg.checkpoint import checkpoint_planned_epochs

    return _checkpoint(tmp_path), lambda: checkpoint_planned_epochs(tmp_path / "model")


def _checkpoint_tile(tmp_path):
    from medseg.checkpoint import checkpoint_tile

    return _checkpoint(tmp_path), lambda: checkpoint_tile(tmp_path / "model")


def _records_its_settings(tmp_path):
    from medseg.checkpoint import _records_its_settings

    return _checkpoint(tmp_path), lambda: _records_its_settings(tmp_path / "model")


def _tensors_path(tmp_path):
    from medseg.checkpoint import checkpoint_tensors_path

    return _checkpoint(tmp_path), lambda: checkpoint_tensors_path(tmp_path / "model").name


def _unfinished_training(tmp_path):
    from medseg.package_training import unfinished_training

    return _checkpoint(tmp_path), lambda: unfinished_training(tmp_path / "model")


def _error(call):
    """What ``call`` says of a record it refuses: ``Type: first line``."""
    try:
        call()
    except MedsegError as error:
        return f"{type(error).__name__}: {first_line(error)}"
    raise AssertionError("not refused")


def _read_made_by(tmp_path):
    from medseg.scoring import read_made_by

    return tmp_path / "c1_seg.json", lambda: _error(lambda: read_made_by(tmp_path / "c1_seg.json"))


def _seg_reference_sidecar(tmp_path):
    from medseg.io.label_images import _prediction_sidecar

    return tmp_path / "c1_seg.json", lambda: _error(
        lambda: _prediction_sidecar(tmp_path / "c1_seg.nii.gz", tmp_path / "ref.dcm", "a DICOM SEG reference"))


def _report_record(tmp_path):
    from medseg.report.result_records import _read_json

    def call():
        _, problem, _ = _read_json(tmp_path / "c1_metrics.json", "medseg-metrics/1", "cases/c1/c1_metrics.json")
        return f"Problem: {problem}" if problem is not None else "AssertionError"
    return tmp_path / "c1_metrics.json", call


def _cohort_summary(tmp_path):
    from medseg.cohort.check import check_failures

    return tmp_path / "summary.json", lambda: _error(lambda: check_failures(tmp_path / "summary.json"))


def _checkpoint_record(tmp_path):
    from medseg.checkpoint import read_checkpoint_record

    return _checkpoint(tmp_path), lambda: _error(lambda: read_checkpoint_record(_checkpoint(tmp_path)))


# reader: (how it is called, the record it uses, what it makes of that, what it makes of a file it cannot use, cap)
_STATUS = {"schema": "medseg-case-status/1", "fingerprint": "p", "outputs": []}
_STARTED = {"fingerprint": "p", "attempts": 1, "memory_mb": [200], "also_made_for": ["q"]}
_PLAN = {"schema": "medseg-cohort-plan/1", "cases_per_job": 1, "jobs": {"b1": ["c1"]},
         "rows": {"c1": ["x", None, None]}}
_RUN = {"pid": 1, "host": "elsewhere", "locks": []}
_CHECKPOINT = {"epoch": 2, "epochs_planned": [5], "config": {"inference": {"roi_size": [32, 32]}},
               "weights_file": "last-0123456789abcdef.safetensors"}
_SUMMARY = {"cases": {"failed": 0, "total": 2}}
READERS = {
    "cohort status": (_status, _STATUS, _STATUS, None, jsonfile.RECORD_BYTES),
    "cohort attempts": (_attempts, _STARTED, 1, 0, jsonfile.RECORD_BYTES),
    "cohort crashes": (_crashes, _STARTED, 1, 0, jsonfile.RECORD_BYTES),
    "cohort equivalents": (_equivalents, _STARTED, ["q"], None, jsonfile.RECORD_BYTES),
    "cohort mark started": (_mark_started, _STARTED, [200, 64], [None, 64], jsonfile.RECORD_BYTES),
    "cohort unscore": (_unscore, {"stage": "evaluate"}, (True, False), (False, True), jsonfile.RECORD_BYTES),
    "forced run token": (_forced_token, {"token": "0123456789abcdef", "forced": {"infer": None}}, True, False,
                         jsonfile.RECORD_BYTES),
    "stopped forced run": (_stopped_forced, {"forced": {"infer": None}}, re.compile("a forced run"), None,
                           jsonfile.RECORD_BYTES),
    "snakemake run record": (_snakelock, _RUN, [], [], jsonfile.RECORD_BYTES),
    "batch plan": (_batch_plan, _PLAN, {"b1": ["c1"]}, None, None),
    "plan rows": (_changed_since_planned, _PLAN, ["c1"], [], None),
    "sidecar field": (_recorded, {"device": "cpu"}, "cpu", None, jsonfile.RESULT_BYTES),
    "sidecar codes": (_outdated_sidecar, {"label_codes": {"1": {}}}, {"label_codes": {"1": {}}}, None,
                      jsonfile.RESULT_BYTES),
    "kept metrics": (_medseg_json, {"schema": "medseg-metrics/1"}, {"schema": "medseg-metrics/1"}, None,
                     jsonfile.RESULT_BYTES),
    "convert sidecar": (_own_sidecar, {"source": "", "source_sha256": "", "series_uid": ""}, True, False,
                        jsonfile.RESULT_BYTES),
    "checkpoint epoch": (_checkpoint_epoch, _CHECKPOINT, 2, None, jsonfile.CHECKPOINT_RECORD_BYTES),
    "checkpoint plan": (_planned_epochs, _CHECKPOINT, 5, None, jsonfile.CHECKPOINT_RECORD_BYTES),
    "checkpoint tile": (_checkpoint_tile, _CHECKPOINT, [32, 32], None, jsonfile.CHECKPOINT_RECORD_BYTES),
    "checkpoint settings": (_records_its_settings, {"epoch": 2}, False, True, jsonfile.CHECKPOINT_RECORD_BYTES),
    "checkpoint tensors": (_tensors_path, _CHECKPOINT, "last-0123456789abcdef.safetensors", "last.safetensors",
                           jsonfile.CHECKPOINT_RECORD_BYTES),
    "unfinished training": (_unfinished_training, _CHECKPOINT, (2, 5), None, jsonfile.CHECKPOINT_RECORD_BYTES),
    # the readers that refuse such a file: a one-line error naming it
    "sidecar made by": (_read_made_by, {}, "AssertionError",
                        re.compile(r"InputError: \S*c1_seg.json: not a readable sidecar \({reason}\)$"),
                        jsonfile.RESULT_BYTES),
    "DICOM SEG reference sidecar": (
        _seg_reference_sidecar, {}, "AssertionError",
        re.compile(r"InputError: \S*ref.dcm: a DICOM SEG reference is scored on its source series, named by the "
                   r"sidecar \S*c1_seg.json of the prediction, which cannot be read \({reason}\)$"),
        jsonfile.RESULT_BYTES),
    "report record": (_report_record, {"schema": "medseg-metrics/1", "labels": {}}, "AssertionError",
                      re.compile(r"Problem: cases/c1/c1_metrics.json: cannot read \({reason}\)$"),
                      jsonfile.RESULT_BYTES),
    "cohort summary": (_cohort_summary, _SUMMARY, "AssertionError",
                       re.compile(r"InputError: \S*summary.json: not a readable cohort summary \({reason}\)$"),
                       jsonfile.RESULT_BYTES),
    "checkpoint record": (_checkpoint_record, {"epoch": 1},
                          re.compile(r"TrainingError: \S*last.json: cannot resume from this checkpoint record \(it "
                                     "lacks"),
                          re.compile(r"TrainingError: \S*last.json: unreadable checkpoint record \({reason}\); "
                                     "start again with overwrite=True$"),
                          jsonfile.CHECKPOINT_RECORD_BYTES),
}


def _outcome(tmp_path: Path, reader: str, place) -> object:
    """What ``reader`` makes of the file ``place(path)`` puts where it reads its record (any exception but the
    refusals the strict readers are expected to raise fails the test)."""
    where, call = READERS[reader][0](tmp_path)
    where.parent.mkdir(parents=True, exist_ok=True)
    place(where)
    try:
        return call()
    except AssertionError as error:
        return "AssertionError" if str(error) == "not refused" else error


def _expect(reader: str, outcome, reason: str) -> None:
    expected = READERS[reader][3]
    if isinstance(expected, re.Pattern):
        pattern = re.compile(expected.pattern.replace("{reason}", reason))
        assert isinstance(outcome, str) and pattern.match(outcome), (outcome, pattern.pattern)
    else:
        assert outcome == expected


@pytest.mark.parametrize("reader", READERS)
def test_a_record_in_order_is_read_as_before(tmp_path, reader):
    _, record, expected, _, _ = READERS[reader]
    outcome = _outcome(tmp_path, reader, lambda path: path.write_text(json.dumps(record, indent=2) + "\n"))
    if isinstance(expected, re.Pattern):
        assert expected.match(outcome), outcome
    else:
        assert outcome == expected


@pytest.mark.parametrize("reader", [name for name, entry in READERS.items() if entry[4] is not None])
def test_a_record_larger_than_its_cap_is_not_read_into_memory(tmp_path, reader, monkeypatch):
    """A multi-GB file named as a record was read whole into memory. Here: a valid record padded to one byte over
    its reader's cap (the caps are MiB: the padding is written, not sparse, to show it is not parsed)."""
    _, record, _, _, cap = READERS[reader]
    text = json.dumps(record)
    outcome = _outcome(tmp_path, reader, lambda path: path.write_text(text + " " * (cap + 1 - len(text))))
    _expect(reader, outcome, rf"{cap >> 20} MiB, where an? [a-z ]+ holds at most {cap >> 20} MiB")


@pytest.mark.parametrize("reader", READERS)
def test_a_record_nested_thousands_deep_is_not_a_traceback(tmp_path, reader):
    """json's RecursionError came out of the started, forced, plan, checkpoint and convert-sidecar reads."""
    outcome = _outcome(tmp_path, reader, lambda path: path.write_text("[" * 100000 + "]" * 100000))
    _expect(reader, outcome, "JSON nested too deeply")


@pytest.mark.parametrize("text, kind", [("[1]", "list"), ("3", "number"), ('"x"', "string"), ("null", "null")])
@pytest.mark.parametrize("reader", READERS)
def test_a_json_value_that_is_not_an_object_is_not_a_traceback(tmp_path, reader, text, kind):
    """A list or a number where a record is (``.get`` on it: AttributeError, ``[...]["config"]``: TypeError)."""
    outcome = _outcome(tmp_path, reader, lambda path: path.write_text(text))
    _expect(reader, outcome, f"holds a JSON {kind}, not an object")


@pytest.mark.parametrize("reader", READERS)
def test_a_record_that_is_not_utf8_is_named_so(tmp_path, reader):
    outcome = _outcome(tmp_path, reader, lambda path: path.write_bytes(b'{"device": "caf\xe9"}'))
    _expect(reader, outcome, r"not UTF-8 text \(byte 0xe9 on line 1, column 16\)")


# mark_started then writes its record: a folder in its place is refused there (OutputWriteError), as before
@pytest.mark.parametrize("reader", [name for name in READERS if name != "cohort mark started"])
def test_a_folder_in_a_records_place_is_not_a_traceback(tmp_path, reader):
    outcome = _outcome(tmp_path, reader, lambda path: path.mkdir())
    _expect(reader, outcome, "a folder, not a file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("reader", READERS)
def test_a_named_pipe_in_a_records_place_is_refused_without_waiting(tmp_path, reader):
    """A named pipe where a record is waited for a writer that never came: the read hung."""
    where = READERS[reader][0](tmp_path)[0]
    outcome = []

    def read():
        try:
            outcome.append(_outcome(tmp_path, reader, os.mkfifo))
        except BaseException as error:  # told by the assertion below, not lost in the thread
            outcome.append(error)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    waited = thread.is_alive()
    if waited:  # let the old read go on: a writer that closes at once
        os.close(os.open(where, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
    assert not waited, "the read waited for a writer"
    _expect(reader, outcome[0], "a named pipe, not a file")


def test_the_reader_names_the_file_the_cap_and_the_size(tmp_path):
    path = tmp_path / "big_seg.json"
    with open(path, "wb") as handle:  # sparse: nothing of it is written, nor read
        handle.truncate(3 << 30)
    with pytest.raises(JsonFileError) as caught:
        read_json_object(path, jsonfile.RESULT_BYTES, "a prediction sidecar")
    assert str(caught.value) == f"{path}: 3.0 GiB, where a prediction sidecar holds at most 32 MiB"
    assert caught.value.reason == "3.0 GiB, where a prediction sidecar holds at most 32 MiB"
    assert isinstance(caught.value, InputError) and isinstance(caught.value, ValueError)
    with pytest.raises(FileNotFoundError):
        read_json_object(tmp_path / "none.json", jsonfile.RECORD_BYTES)
    path.write_text('{"a": 1}')
    assert read_json_object(path, None) == {"a": 1}


def test_an_integer_too_long_to_convert_is_a_refusal_not_a_traceback(tmp_path):
    """``int()``'s limit of 4300 digits raised a ValueError that is not a JSONDecodeError."""
    path = tmp_path / "c1_metrics.json"
    path.write_text('{"a": ' + "9" * 5000 + "}")
    with pytest.raises(JsonFileError, match="integer string conversion"):
        read_json_object(path, jsonfile.RESULT_BYTES)


def test_a_broken_checkpoint_record_refuses_resume_in_one_line(tmp_path):
    from medseg.checkpoint import read_checkpoint_record

    meta = _checkpoint(tmp_path)
    meta.parent.mkdir(parents=True)
    meta.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(TrainingError) as caught:
        read_checkpoint_record(meta)
    assert str(caught.value) == (f"{meta}: unreadable checkpoint record (JSON nested too deeply); start again with "
                                 "overwrite=True")


def test_a_checkpoint_record_the_os_refuses_names_the_reason_once_in_lower_case(tmp_path, monkeypatch):
    """As every other message words an OS error: not "([Errno 13] Permission denied: '<last.json again>')"."""
    import medseg.checkpoint
    from medseg.checkpoint import read_checkpoint_record

    meta = _checkpoint(tmp_path)
    meta.parent.mkdir(parents=True)
    meta.write_text("{}")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(medseg.checkpoint, "read_checkpoint_json", refuse)
    with pytest.raises(TrainingError) as caught:
        read_checkpoint_record(meta)
    assert str(caught.value) == (f"{meta}: unreadable checkpoint record (permission denied); start again with "
                                 "overwrite=True")


@pytest.mark.parametrize("data, said", [(b"", "an empty file"), (b" \n\n", "white space only"),
                                        (b"\0" * 512, "512 NUL bytes only, its content never written")])
@pytest.mark.parametrize("reader", READERS)
def test_an_empty_record_is_named_so_not_in_jsons_words(tmp_path, reader, data, said):
    """A record left empty (a copy cut off, a disk that filled as it was written; its size but not its content
    written, zeros, where the system stopped as it was saved) was refused in json's words: "Expecting value: line 1
    column 1 (char 0)"."""
    outcome = _outcome(tmp_path, reader, lambda path: path.write_bytes(data))
    _expect(reader, outcome, said)


@pytest.mark.parametrize("text, said", [
    ('{\n  "a": 1,\n  "b": [1, 2', "not valid JSON: cut short, it ends at line 3, column 12 with 2 brackets "
                                  "unclosed (an interrupted copy or save, or a closing bracket or quote missing)"),
    ('{"a": "x\\"y', "not valid JSON: cut short, it ends at line 1, column 11 inside a string (an interrupted copy or "
                    "save, or a closing bracket or quote missing)"),
    ('{"a": "}", "b": [{"c": 1}]' + "\0" * 64, "not valid JSON: cut short, it ends at line 1, column 26 with 1 "
                                               "bracket unclosed; zero bytes follow it (an interrupted copy or save, "
                                               "or a closing bracket or quote missing)"),
    ('{"a": 1\n "b": 2}', "not valid JSON at line 2, column 2: a ',' or a closing bracket was expected"),
    ('{"a": [1, 2,]}', "not valid JSON at line 1, column 13: a comma before a closing bracket (JSON allows no "
                       "trailing comma)"),
    ("{'a': 1}", "not valid JSON at line 1, column 2: a key in single quotes; JSON's keys are in double quotes"),
    ('{"a": 1}}', "not valid JSON at line 1, column 9: more text follows the JSON value (a stray bracket, or two JSON "
                  "texts in one file)"),
    ('{"path": "C:\\scans"}', "not valid JSON at line 1, column 13: an invalid backslash escape inside a string (a "
                              "backslash, as a Windows path's, is written \\\\)"),
])
def test_json_errors_say_where_and_whether_the_file_was_cut_short(tmp_path, text, said):
    """A file cut mid-way was refused in json's bare words ("Expecting ',' delimiter: line 3 column 13 (char 27)"),
    which said nothing of a file cut short; the place is given as an editor gives it (line, column)."""
    path = tmp_path / "record.json"
    path.write_text(text)
    with pytest.raises(JsonFileError) as caught:
        read_json_object(path, None)
    assert str(caught.value) == f"{path}: {said}"


@pytest.mark.parametrize("text, said", [
    ('{\n  // the labels\n  "a": 1\n}', "not valid JSON at line 2, column 3: a comment (JSON allows none: remove it)"),
    ('{"a": 1 /* one */}', "not valid JSON at line 1, column 9: a comment (JSON allows none: remove it)"),
    ('# written by hand\n{"a": 1}', "not valid JSON at line 1, column 1: a comment (JSON allows none: remove it)"),
    ('{"colour": #fff}', "not valid JSON at line 1, column 12: a value was expected"),  # a value without quotes
])
def test_a_comment_in_json_is_named_a_comment(tmp_path, text, said):
    """A comment (as JSONC, JSON5 and YAML allow) was "a key in double quotes was expected" or "a value was
    expected", which sent the user looking for a quote."""
    path = tmp_path / "record.json"
    path.write_text(text)
    with pytest.raises(JsonFileError) as caught:
        read_json_object(path, None)
    assert str(caught.value) == f"{path}: {said}"


def test_a_record_saved_with_a_byte_order_mark_is_read(tmp_path):
    """A sidecar or metrics file saved again by Windows Notepad starts with a UTF-8 byte order mark: it was refused in
    json's words ("Unexpected UTF-8 BOM (decode using utf-8-sig)"), where model.json and dataset.json pass it over."""
    path = tmp_path / "case_seg.json"
    path.write_bytes(b'\xef\xbb\xbf{"labels": {"1": "liver"}}')
    assert read_json_object(path, None) == {"labels": {"1": "liver"}}


def test_json_error_text_names_a_byte_order_mark_in_its_words():
    """A reader that decodes as plain UTF-8 gets json's error for a byte order mark; it is said in medseg's words."""
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads("\ufeff{}")
    assert json_error_text(caught.value) == ("not valid JSON at line 1, column 1: a byte order mark (BOM) starts the "
                                             "file; save it as UTF-8 without one")


def test_a_training_config_and_a_dataset_json_cut_short_are_named_so(tmp_path):
    from medseg.io.dataset_json import read_document
    from medseg.train_config import read_config

    cut = ('{\n  "name": "m",\n  "labels": {"0": "background", "1": "a"', "it ends at line 3, column 40 with 2 "
           "brackets unclosed (an interrupted copy or save, or a closing bracket or quote missing)")
    config = tmp_path / "config.json"
    config.write_text(cut[0])
    with pytest.raises(TrainingError) as caught:  # was "not valid JSON (Expecting ',' delimiter: line 3 column 42 …)"
        read_config(config)
    assert str(caught.value) == f"{config}: not valid JSON: cut short, {cut[1]}"
    dataset = tmp_path / "dataset.json"
    dataset.write_text(cut[0])
    assert read_document(dataset) == (None, f"not valid JSON: cut short, {cut[1]}")
