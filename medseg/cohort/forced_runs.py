"""A forced workflow run (Snakemake's ``-F``, ``--forcerun``, ``-f`` on job records): its jobs make their cases again.

Snakemake runs a forced job although its record is there; the job would keep every finished case. The Snakefile
tells its jobs through the environment (``MEDSEG_REDO_INFER``, ``MEDSEG_REDO_EVALUATE``; a job parameter would run
every job once more when the option is no longer given) a token for the forced run, and which batches it forces.
A case counts as finished only when made under that token (:class:`medseg.cohort.records.ResultsFolder`), so a
retried job keeps what the run has made again. The token is kept in ``jobs/.forced.json`` until the run succeeds:
the same command run again after a stop goes on with it instead of making everything again. A run without the
forcing option while it is kept is told that the cases the stopped run had not reached are still the earlier ones.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from medseg.cohort.records import read_record, write_json
from medseg.cohort.samples import some_names

__all__ = ["FORCED_RECORD", "forget_forced_run", "redo_for_job", "redo_values", "stopped_forced_run"]

FORCED_RECORD = "jobs/.forced.json"


def redo_values(results: Path | str, forced: Mapping[str, list[str] | None], stages=("infer", "evaluate"),
                keep: bool = True) -> dict[str, str]:
    """The environment values that tell each stage's jobs what is forced (``""``: nothing), from
    :func:`~medseg.cohort.invocation.forced_jobs`: ``TOKEN`` for every batch, ``TOKEN:batch1,batch2`` for some.
    With ``keep`` (a run, not a preview), the token is written to ``jobs/.forced.json``, and one found there for
    the same forcing is used again."""
    if not forced:
        return dict.fromkeys(stages, "")
    record = Path(results) / FORCED_RECORD
    spec = {stage: forced[stage] for stage in stages if stage in forced}
    token = None
    try:
        earlier = read_record(record)
        if earlier.get("forced") == spec and isinstance(earlier.get("token"), str):
            token = earlier["token"]
    except (OSError, ValueError):  # a JsonFileError too
        pass
    token = token or os.urandom(8).hex()
    if keep:
        write_json(record, {"token": token, "forced": spec})
    return {stage: "" if stage not in spec else token if spec[stage] is None else f"{token}:{','.join(spec[stage])}"
            for stage in stages}


def forget_forced_run(results: Path | str) -> None:
    """The forced run has succeeded: a later run with the same options is a new one."""
    try:
        (Path(results) / FORCED_RECORD).unlink()
    except FileNotFoundError:
        pass


def stopped_forced_run(results: Path | str) -> str | None:
    """What to tell a run without a forcing option when a forced run on the folder stopped before it finished (its
    token is kept in ``jobs/.forced.json``): the cases it had not reached are kept from before it. None otherwise."""
    try:
        spec = read_record(Path(results) / FORCED_RECORD).get("forced")
    except (OSError, ValueError):  # a JsonFileError too
        return None
    if not isinstance(spec, dict) or not spec:
        return None
    what = "; ".join(f"{stage}: " + ("every case" if batches is None else f"the cases of {some_names(batches)}")
                     for stage, batches in spec.items() if batches is None or isinstance(batches, list))
    return (f"a forced run ({what}) stopped before it finished: the cases it had not reached are still those made "
            "before it; give the same forcing option (-F, --forcerun ...) again to finish it")


def redo_for_job(value: str | None, record: Path | str | None) -> str | None:
    """The token a job makes its cases again under, from its stage's environment value (:func:`redo_values`) and its
    job record (``jobs/<batch>.<stage>.json``, which names its batch); None when its batch is not forced."""
    if not value:
        return None
    token, _, batches = value.partition(":")
    if not batches:
        return token or None
    if record is None:
        return None
    batch = Path(record).name.rsplit(".", 2)[0]
    return token if batch in batches.split(",") else None
