"""What is wrong with a YAML text, in medseg's words: one line naming the line and column, as
:func:`medseg.jsonfile.json_error_text` does for JSON.

PyYAML's own message is several lines (a context, a quoted source line, a caret under it, the problem) naming the
text "<unicode string>" rather than the file, in its parser's terms ("expected <block end>, but found '-'"); folded
into one line it still read as a parser's trace. Here a text cut short says so (where it ends, inside which string or
with which bracket unclosed), and the common slips (a tab indenting a line, a ``key: value`` inside a value, a line
indented out of step, a list item among a mapping's keys, a missing ``:``) are named as an author would fix them.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import InputError

__all__ = ["check_yaml_file", "yaml_error_text"]

# what may follow a YAML text cut short: white space, or the zero bytes of a file allocated whole before its data
_TRAILING = " \t\r\n\0"
_CUT_SHORT = "(an interrupted copy or save, or a closing bracket or quote missing)"


def yaml_error_text(error: Exception, text: str) -> str:
    """What is wrong with ``text`` (the YAML that PyYAML refused with ``error``), without the file's name:
    ``not valid YAML at line 3, column 1: a tab indents the line; YAML indents with spaces only``, or
    ``not valid YAML: cut short, it ends at line 3, column 16 with the '[' opened at line 3, column 11 unclosed
    (…)``. Lines and columns count from 1, as an editor's do."""
    import yaml

    if isinstance(error, yaml.reader.ReaderError):  # a character YAML allows nowhere (a control character, a NUL)
        line, column = _place(text, error.position)
        code = error.character if isinstance(error.character, int) else ord(error.character[:1] or "\0")
        end = len(text.rstrip(_TRAILING))
        if code == 0 and error.position >= end:  # the zero bytes of a file allocated whole, its text cut short
            return _zeros_after(text, end)
        return (f"not valid YAML at line {line}, column {column}: the control character U+{code:04X}, which YAML "
                "allows nowhere (remove it, or save the file as UTF-8 text)")
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return f"not valid YAML ({' '.join(str(error).split())})"
    problem = error.problem or ""
    context = error.context or ""
    mark, opened = error.problem_mark, error.context_mark
    end = len(text.rstrip(_TRAILING))
    if "end of stream" in problem or "<stream end>" in problem or mark.index >= end:
        return _cut_short(text, end, context, opened)
    line, column = mark.line + 1, mark.column + 1
    at = f"not valid YAML at line {line}, column {column}"
    where = f"line {opened.line + 1}, column {opened.column + 1}" if opened is not None else None
    if "'\\t' that cannot start any token" in problem:
        start = text.rfind("\n", 0, mark.index) + 1
        if not text[start:mark.index].strip(" \t"):
            return f"{at}: a tab indents the line; YAML indents with spaces only"
        return f"{at}: a tab where YAML allows none outside quotes; write spaces"
    if "that cannot start any token" in problem:
        character = problem.split("'")[1] if problem.count("'") >= 2 else "?"
        return f"{at}: a value cannot start with {character!r}; put the value in quotes"
    if problem == "mapping values are not allowed here":
        return (f"{at}: a mapping ('key: value') where a value was expected: a value holding ': ' is written in "
                "quotes, and a key indented deeper than the key above it, which has its value, belongs to no mapping")
    if problem.startswith("expected <block end>, but found"):
        found = problem.split("found ", 1)[1]
        container = "mapping" if "mapping" in context else "list"
        if found == "'-'":
            return (f"{at}: a list item ('-') where a key of the mapping at {where} was expected; indent the list "
                    "under its key")
        if found in ("']'", "'}'"):
            return f"{at}: a closing {found} that no bracket before it opened"
        return (f"{at}: the line is indented out of step with the {container} at {where} (its items start at column "
                f"{opened.column + 1}); indent items of one {container} alike")
    if problem == "could not find expected ':'":
        return (f"not valid YAML at {where}: a key without its ':' (or a value continued on a line indented as a "
                "key)")
    if problem.startswith("expected '<document start>', but found"):  # after a top-level value in brackets
        found = problem.split("found ", 1)[1]
        if found in ("']'", "'}'"):
            return f"{at}: a closing {found} that no bracket before it opened"
        return (f"{at}: more text after the value in brackets that makes the whole document (a config is one "
                "mapping of 'key: value' lines)")
    if context == "while parsing a flow node":  # where a value of a [ ] or { } was due ("[1,, 2]", "[1, }")
        found = problem.split("found ", 1)[1] if "found " in problem else "?"
        if found == "','":
            return f"{at}: a ',' with no value before it (two commas in a row, or one right after the opening bracket)"
        if found in ("']'", "'}'"):
            return f"{at}: a {found} that does not close the bracket open here, which is the other kind"
        return f"{at}: a value was expected, not {found} (a value starting with it is written in quotes)"
    if context.startswith("while parsing a flow"):
        bracket = "[" if "sequence" in context else "{"
        closing = "]" if bracket == "[" else "}"
        return (f"{at}: a ',' or '{closing}' was expected (the '{bracket}' opened at {where} is not closed before "
                "it)")
    if problem.startswith("found unknown escape character"):
        at = f"not valid YAML at line {line}, column {column - 1}"  # the backslash's (PyYAML's: the next one's)
        return (f"{at}: an invalid backslash escape inside a double-quoted string (a backslash, as a Windows path's, "
                "is written \\\\, or the string is put in single quotes)")
    if problem.startswith("found undefined alias"):
        name = problem.split("'")[1] if problem.count("'") >= 2 else ""
        return (f"{at}: '*{name}' refers to no anchor '&{name}' before it (a value starting with '*' is written in "
                "quotes)")
    if problem.startswith("could not determine a constructor for the tag"):
        tag = problem.split("'")[1].replace("tag:yaml.org,2002:", "!!") if problem.count("'") >= 2 else "?"
        return f"{at}: the tag {tag!r}, which a config may not hold (plain values, lists and mappings only)"
    if problem == "but found another document":
        return f"{at}: a second document ('---') follows the first; a config is one document"
    words = " ".join(problem.split())
    return f"{at}: {words}" + (f" ({' '.join(context.split())} at {where})" if context and where else "")


def _cut_short(text: str, end: int, context: str, opened) -> str:
    line = text.count("\n", 0, end) + 1
    column = end - (text.rfind("\n", 0, end) + 1)  # of its last character
    if "quoted scalar" in context and opened is not None:
        inside = f"inside the string opened at line {opened.line + 1}, column {opened.column + 1}"
    else:
        brackets = _open_brackets(text[:end])
        if len(brackets) == 1:
            inside = f"with the {brackets[0][2]!r} opened at line {brackets[0][0]}, column {brackets[0][1]} unclosed"
        elif brackets:
            last_line, last_column, last = brackets[-1]
            inside = (f"with {len(brackets)} brackets unclosed, the last a {last!r} opened at line {last_line}, "
                      f"column {last_column}")
        else:
            inside = "early"
    zeros = "; zero bytes follow it" if "\0" in text[end:] else ""
    return f"not valid YAML: cut short, it ends at line {line}, column {column} {inside}{zeros} {_CUT_SHORT}"


def _zeros_after(text: str, end: int) -> str:
    """A text that turns to zero bytes at ``end``: cut short, as :func:`_cut_short` tells (inside which string, with
    which bracket unclosed) from what its text before the zero bytes lacks."""
    import yaml

    context, opened = "", None
    try:
        yaml.compose(text[:end], Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        context, opened = error.context or "", error.context_mark
    except yaml.YAMLError:
        pass
    return _cut_short(text, end, context, opened)


def _place(text: str, index: int) -> tuple[int, int]:
    """The line and column (from 1) of the character at ``index`` of ``text``."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _open_brackets(text: str) -> list[tuple[int, int, str]]:
    """The flow brackets (``[``, ``{``) of ``text`` still open at its end, as YAML's scanner reads them (quotes and
    comments skipped): each one's line, column and character."""
    import yaml

    opened: list[tuple[int, int, str]] = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)):
                bracket = "[" if isinstance(token, yaml.FlowSequenceStartToken) else "{"
                opened.append((token.start_mark.line + 1, token.start_mark.column + 1, bracket))
            elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and opened:
                opened.pop()
    except yaml.YAMLError:  # the scanner's own error where the text ends: the brackets counted up to it stand
        pass
    return opened


def check_yaml_file(path: Path | str, what: str) -> None:
    """Raise :class:`InputError` naming ``path`` (``what`` it is, for a file that cannot be read) when it is not
    UTF-8 YAML, in one line (:func:`yaml_error_text`); nothing else of it is checked. JSON passes (Snakemake reads a
    config file as JSON first: JSON indented with tabs, which PyYAML refuses, is a valid config), and so does a tag
    (``!!python/tuple``): only the text's syntax is checked, not what its loader makes of it."""
    import json

    import yaml

    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise InputError(f"{path}: cannot read {what} ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); save {what} as "
                         "UTF-8") from error
    try:
        json.loads(text)
        return
    except (ValueError, RecursionError):  # not JSON: read as YAML
        pass
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)  # one document; its anchors and aliases resolve
    except yaml.YAMLError as error:
        raise InputError(f"{path}: {yaml_error_text(error, text)}") from error
    except RecursionError as error:
        raise InputError(f"{path}: not valid YAML: nested too deeply") from error
