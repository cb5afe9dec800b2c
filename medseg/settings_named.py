"""How a message names a setting its reader can change: as the keyword argument a Python caller passes
(``overwrite=True``, ``device='cpu'``), or, while a command of medseg's runs, as the command line's option
(``--overwrite``, ``--device cpu``).

The library's errors say how to recover in the terms of whoever called it: a notebook was told to "pass
--overwrite", an option it cannot give. The library names a setting by its keyword argument (:func:`setting`); the
command line installs its options' names for the run (:func:`named_as`), so that every line that says it, an error,
a warning or a failure record written during the run, names the option.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar

__all__ = ["ANY", "setting", "setting_choices", "same_run_with", "named_as"]

ANY = object()  # as a value: the setting itself is named (``series=...``; ``--series``)

# keyword argument -> the option that gives it, while the command line runs (named_as); None: a Python caller's
_OPTIONS: ContextVar[Mapping[str, str] | None] = ContextVar("medseg_option_names", default=None)


def setting(name: str, value: object = True) -> str:
    """How to give the setting ``name`` (a keyword argument of the library's functions) ``value``: ``overwrite=True``
    for a flag, ``device='cpu'``, ``series=...`` with ``value`` :data:`ANY`; while the command line's names are
    installed (:func:`named_as`), its option: ``--overwrite``, ``--device cpu``, ``--series``."""
    options = _OPTIONS.get()
    option = options.get(name) if options is not None else None
    if option is None:
        return f"{name}=..." if value is ANY else f"{name}={value!r}"
    return option if value is True or value is ANY else f"{option} {value}"


def setting_choices(name: str, *values: object) -> str:
    """The setting ``name`` given one of ``values``, as one phrase: ``device='mps', 'cpu' or 'auto'``; on the command
    line ``--device mps, cpu or auto``."""
    first, *others = values
    options = _OPTIONS.get()
    shown = str if options is not None and name in options else repr
    phrases = [setting(name, first), *map(shown, others)]
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} or {phrases[-1]}"


def same_run_with(name: str) -> str:
    """Running again as before with the flag ``name`` set: ``the same call with resume=True``; on the command line
    ``the same command with --resume``."""
    options = _OPTIONS.get()
    run = "command" if options is not None and name in options else "call"
    return f"the same {run} with {setting(name)}"


@contextlib.contextmanager
def named_as(options: Mapping[str, str]) -> Iterator[None]:
    """Within: settings named as the command line's ``options`` (keyword argument -> option, ``{"overwrite":
    "--overwrite"}``) in this context (thread, task); the names before it back afterwards."""
    token = _OPTIONS.set(dict(options))
    try:
        yield
    finally:
        _OPTIONS.reset(token)
