"""How a message names a setting its reader can change: as the keyword argument a Python caller passes
(``overwrite=True``, ``device='cpu'``), or, while a command of medseg's runs, as the command line's option
(``--overwrite``, ``--device cpu``).

The library's errors say how to recover in the terms of whoever called it: a notebook was told to "pass
--overwrite", an option it cannot give. The library names a setting by its keyword argument (:func:`setting`); the
command line installs the options of the command that runs (:func:`named_as`, each command its own), so that every
line that says it, an error, a warning or a failure record written during the run, names the option; a setting the
command has no option for is named as its reader can give it (``elsewhere``: a workflow config's key) or as a
keyword argument that the command has no option for, never as another command's option.

The names are a context variable, which a thread does not inherit: a thread started while a command runs carries
them where its work is run through :func:`carried`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["ANY", "setting", "setting_choices", "same_run_with", "named_as", "named_elsewhere", "has_option", "carried"]

ANY = object()  # as a value: the setting itself is named (``series=...``; ``--series``)

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Names:
    options: Mapping[str, str]  # keyword argument -> the command's option that gives it
    command: str | None = None  # the command that runs (``cohort infer``), None: names without a command's
    elsewhere: Mapping[str, str] = field(default_factory=dict)  # keyword argument -> where its user gives it


# the names installed while the command line runs (named_as); None: a Python caller's, the keyword arguments
_OPTIONS: ContextVar[_Names | None] = ContextVar("medseg_option_names", default=None)


def _keyword(name: str, value: object) -> str:
    return f"{name}=..." if value is ANY else f"{name}={value!r}"


def setting(name: str, value: object = True, python: str | None = None) -> str:
    """How to give the setting ``name`` (a keyword argument of the library's functions) ``value``: ``overwrite=True``
    for a flag, ``device='cpu'``, ``series=...`` with ``value`` :data:`ANY`; while the command line's names are
    installed (:func:`named_as`), its option: ``--overwrite``, ``--device cpu``, ``--series``. ``python``: how a
    Python caller gives a setting that is no keyword argument (a config's key), ``{value}`` for the value:
    ``"training.epochs: {value} in the config"``."""
    names = _OPTIONS.get()
    if names is None or (python is not None and name not in names.options and name not in names.elsewhere):
        return _keyword(name, value) if python is None else python.format(value="..." if value is ANY else value)
    option = names.options.get(name)
    if option is not None:
        return option if value is True or value is ANY else f"{option} {value}"
    where = names.elsewhere.get(name)
    if where is not None:  # a workflow config's key, a sample sheet's column: ``device: cuda in the workflow config``
        return where.format(value="..." if value is ANY else value)
    if names.command is None:
        return _keyword(name, value)
    # no option of this command gives it: not another command's option, but the keyword argument, said to be one
    return f"{_keyword(name, value)} (a keyword argument of medseg's Python functions; medseg {names.command} has " \
           "no option for it)"


def named_elsewhere(name: str) -> bool:
    """Whether the command that runs gives the setting ``name`` elsewhere than in an option or a keyword argument
    (:func:`named_as`'s ``elsewhere``: a sample sheet's column), which its message then says."""
    names = _OPTIONS.get()
    return names is not None and name not in names.options and name in names.elsewhere


def has_option(name: str) -> bool | None:
    """Whether the command that runs has an option for the setting ``name``; None for a Python caller (no command's
    names installed), for a message that says another command (``medseg train --resume``) where this one lacks it."""
    names = _OPTIONS.get()
    return None if names is None else name in names.options


def setting_choices(name: str, *values: object) -> str:
    """The setting ``name`` given one of ``values``, as one phrase: ``device='mps', 'cpu' or 'auto'``; on the command
    line ``--device mps, cpu or auto``; given elsewhere, ``device: mps, cpu or auto in the workflow config``."""
    first, *others = values
    names = _OPTIONS.get()
    if named_elsewhere(name):  # one key given one of them: ``device: cpu or auto in the workflow config``
        shown_values = [str(value) for value in values]
        joined = shown_values[0] if len(values) == 1 else f"{', '.join(shown_values[:-1])} or {shown_values[-1]}"
        return setting(name, joined)
    shown = str if names is not None and name in names.options else repr
    phrases = [setting(name, first), *map(shown, others)]
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} or {phrases[-1]}"


def same_run_with(name: str) -> str:
    """Running again as before with the flag ``name`` set: ``the same call with resume=True``; on the command line
    ``the same command with --resume``."""
    names = _OPTIONS.get()
    run = "call" if names is None else "command" if name in names.options else "run"
    return f"the same {run} with {setting(name)}"


@contextlib.contextmanager
def named_as(options: Mapping[str, str], command: str | None = None,
             elsewhere: Mapping[str, str] | None = None) -> Iterator[None]:
    """Within: settings named as the command line's ``options`` (keyword argument -> option, ``{"overwrite":
    "--overwrite"}``) in this context (thread, task); the names before it back afterwards. ``command``: the command
    whose options they are (``cohort infer``); a setting it has no option for is then named by ``elsewhere``
    (keyword argument -> where its user gives it, ``{value}`` for the value: ``"device: {value} in the workflow
    config"``), else as a keyword argument that the command has no option for."""
    token = _OPTIONS.set(_Names(dict(options), command, dict(elsewhere or {})))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def carried(function: Callable[..., _T]) -> Callable[..., _T]:
    """``function`` run in a copy of this context: a thread (``threading.Thread(target=carried(work))``) or a pool's
    task (``pool.submit(carried(work))``) started while a command runs names its options, where it would name the
    keyword arguments (a thread starts in an empty context)."""
    context = contextvars.copy_context()

    def run(*args, **kwargs) -> _T:
        return context.copy().run(function, *args, **kwargs)

    return run
