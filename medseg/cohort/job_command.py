"""The command with which the cohort workflow's jobs run medseg: the medseg the run was planned with.

Snakemake puts the Snakefile's folder first on the planning's path, so the planning imports the ``medseg/`` beside
it; a job's ``python -m medseg`` imported whichever medseg its environment held (an installed wheel, another
checkout's editable install). The jobs put that folder first on their ``PYTHONPATH``, after which a user's own
``PYTHONPATH`` still follows. A folder whose path holds the path separator (``:``, as in a folder named after a
time, ``run-12:30``) cannot be given that way (Python splits it there, and the jobs ran the environment's medseg
again): its jobs put it on ``sys.path`` themselves. Python runs with ``-P``: ``python -m`` puts the working folder
before ``PYTHONPATH``, and a job run in a folder holding a ``medseg/`` (another checkout, Snakemake run there with
``-s``) imported that one.
"""

from __future__ import annotations

import os
import shlex

__all__ = ["FROM_FOLDER", "medseg_command"]

# run medseg as `python -m medseg` does, from the folder given as the first argument (removed before medseg reads
# its arguments; alter_sys: sys.argv[0] and __main__ are medseg's, so its messages name `python -m medseg`). The
# process's command line keeps it: medseg.cohort.snakelock tells the workflow's steps by it
FROM_FOLDER = ('import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); '
                'runpy.run_module("medseg", run_name="__main__", alter_sys=True)')


def medseg_command(python: str, folder: str | os.PathLike | None) -> str:
    """The shell command (bash, as Snakemake runs it) that runs ``python -m medseg`` with the ``medseg`` package of
    ``folder`` (the folder that holds it) first on the path, not the working folder's; without ``folder`` (a conda
    environment, which installs its own), plain ``python -m medseg``. The command's arguments follow it."""
    if folder is None:
        return f"{shlex.quote(python)} -m medseg"
    folder = os.fspath(folder)
    if os.pathsep in folder:
        return f"{shlex.quote(python)} -P -c {shlex.quote(FROM_FOLDER)} {shlex.quote(folder)}"
    return (f"PYTHONPATH={shlex.quote(folder)}${{PYTHONPATH:+{os.pathsep}$PYTHONPATH}} {shlex.quote(python)} -P "
            "-m medseg")
