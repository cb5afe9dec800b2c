"""YAML errors in medseg's words (medseg.yamlfile): one line naming the line and column and what is wrong, where
PyYAML's own message was several lines about "<unicode string>" and its parser's tokens."""

from __future__ import annotations

import pytest
import yaml

from medseg.errors import InputError
from medseg.yamlfile import check_yaml_file, yaml_error_text

CUT = "(an interrupted copy or save, or a closing bracket or quote missing)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ntraining:\n  epochs: [1, 2\n",
         f"not valid YAML: cut short, it ends at line 3, column 15 with the '[' opened at line 3, column 11 unclosed "
         f"{CUT}"),
        ("a: [1, {b: 2\n\n",
         f"not valid YAML: cut short, it ends at line 1, column 12 with 2 brackets unclosed, the last a '{{' opened at "
         f"line 1, column 8 {CUT}"),
        ('name: "x\ntraining: 1\n',
         f"not valid YAML: cut short, it ends at line 2, column 11 inside the string opened at line 1, column 7 {CUT}"),
        # zero bytes where the text ends (a file allocated whole, its text cut short): as a JSON file's, not "the
        # control character U+0000"; one amid the text is that
        ("a: 1\nb: 2\0\0\0",
         f"not valid YAML: cut short, it ends at line 2, column 4 early; zero bytes follow it {CUT}"),
        ("a: [1, 2\n\0\0",
         f"not valid YAML: cut short, it ends at line 1, column 8 with the '[' opened at line 1, column 4 unclosed; "
         f"zero bytes follow it {CUT}"),
        ('a: "x\n\0', f"not valid YAML: cut short, it ends at line 1, column 5 inside the string opened at line 1, "
                      f"column 4; zero bytes follow it {CUT}"),
        ("a: 1\nb: 2\0\0\0\nc: 3\n", None),
        ("name: x\ntraining:\n\tepochs: 2\n",
         "not valid YAML at line 3, column 1: a tab indents the line; YAML indents with spaces only"),
        ("name: x\n  bad: 1\n",
         "not valid YAML at line 2, column 6: a mapping ('key: value') where a value was expected: a value holding "
         "': ' is written in quotes, and a key indented deeper than the key above it, which has its value, belongs "
         "to no mapping"),
        ("name: x\n- a\n",
         "not valid YAML at line 2, column 1: a list item ('-') where a key of the mapping at line 1, column 1 was "
         "expected; indent the list under its key"),
        ("a:\n  - 1\n b: 2\n",
         "not valid YAML at line 3, column 2: the line is indented out of step with the mapping at line 1, column 1 "
         "(its items start at column 1); indent items of one mapping alike"),
        ("name: x\nfoo\nbar: 1\n",
         "not valid YAML at line 2, column 1: a key without its ':' (or a value continued on a line indented as a "
         "key)"),
        ("a: [1\nb: 2\n",
         "not valid YAML at line 2, column 2: a ',' or ']' was expected (the '[' opened at line 1, column 4 is not "
         "closed before it)"),
        ("a: [1, 2]]\n", "not valid YAML at line 1, column 10: a closing ']' that no bracket before it opened"),
        # a ',' without its value was named as a '{' that was not there ("the '{' opened at line 1, column 7")
        ("a: [1,, 2]\n", "not valid YAML at line 1, column 7: a ',' with no value before it (two commas in a row, or "
                         "one right after the opening bracket)"),
        ("a: [1, }\n", "not valid YAML at line 1, column 8: a '}' that does not close the bracket open here, which is "
                       "the other kind"),
        ("{a: 1}}\n", "not valid YAML at line 1, column 7: a closing '}' that no bracket before it opened"),
        ("a: @x\n", "not valid YAML at line 1, column 4: a value cannot start with '@'; put the value in quotes"),
        ('a: "C:\\data"\n',
         "not valid YAML at line 1, column 7: an invalid backslash escape inside a double-quoted string (a "
         "backslash, as a Windows path's, is written \\\\, or the string is put in single quotes)"),
        ("a: !!python/object:os.system x\n",
         "not valid YAML at line 1, column 4: the tag '!!python/object:os.system', which a config may not hold "
         "(plain values, lists and mappings only)"),
        ("a: 1\n---\nb: 2\n",
         "not valid YAML at line 2, column 1: a second document ('---') follows the first; a config is one document"),
        ("a: \x07\n", "not valid YAML at line 1, column 4: the control character U+0007, which YAML allows nowhere "
                      "(remove it, or save the file as UTF-8 text)"),
    ],
)
def test_yaml_errors_are_one_line_in_medsegs_words(text, expected):
    with pytest.raises(yaml.YAMLError) as raised:
        yaml.safe_load(text)
    words = yaml_error_text(raised.value, text)
    if expected is None:
        assert words.startswith("not valid YAML at line 2, column 5: the control character U+0000"), words
    else:
        assert words == expected
    assert "\n" not in words and "<unicode string>" not in words and "^" not in words


def test_check_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "cohort.yaml"
    path.write_text("samples: configs/samples.tsv\n\tmodel: phantom\n")
    with pytest.raises(InputError) as raised:
        check_yaml_file(path, "the workflow's settings")
    assert str(raised.value) == (f"{path}: not valid YAML at line 2, column 1: a tab indents the line; YAML indents "
                                 "with spaces only")
    path.write_text("samples: configs/samples.tsv  # a comment\nmodel: phantom\n")
    check_yaml_file(path, "the workflow's settings")  # valid: nothing raised
    with pytest.raises(InputError, match="cannot read the workflow's settings"):
        check_yaml_file(tmp_path / "none.yaml", "the workflow's settings")


@pytest.mark.parametrize(
    "text",
    [
        '{\n\t"samples": "configs/samples.tsv",\n\t"model": "phantom"\n}\n',  # JSON indented with tabs
        "samples: configs/samples.tsv\nsizes: !!python/tuple [1, 2]\n",  # a tag Snakemake's loader constructs
        "defaults: &d\n  device: cpu\nrun:\n  <<: *d\n  threads: 2\n",  # an anchor, an alias and a merge
        "---\nmodel: phantom\n...\n",  # one document, marked
        "",
    ],
)
def test_check_yaml_file_passes_what_snakemake_reads(tmp_path, text):
    """Snakemake reads a config file as JSON first, then as YAML with its tags: JSON indented with tabs (which PyYAML
    refuses) and a ``!!python/tuple`` were refused as "a tab indents the line" and "a tag a config may not hold"."""
    from snakemake.common.configfile import _load_configfile

    path = tmp_path / "cohort.yaml"
    path.write_text(text)
    if text:
        assert _load_configfile(str(path)) is not None  # Snakemake's own reader takes it
    check_yaml_file(path, "the workflow's settings")  # nothing raised


def test_check_yaml_file_refuses_what_snakemake_refuses(tmp_path):
    path = tmp_path / "cohort.yaml"
    path.write_text("a: [" * 5000)  # nested too deeply for JSON and for PyYAML
    with pytest.raises(InputError) as raised:
        check_yaml_file(path, "the workflow's settings")
    assert str(raised.value) == f"{path}: not valid YAML: nested too deeply"
    path.write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(InputError, match="line 2, column 1: a second document"):
        check_yaml_file(path, "the workflow's settings")
    path.write_text("a: *nowhere\n")
    with pytest.raises(InputError, match="'\\*nowhere' refers to no anchor"):
        check_yaml_file(path, "the workflow's settings")
