"""`medseg verify`: does a segmentation come from the input and model its sidecar names?"""

from __future__ import annotations

import os
from pathlib import Path

import click

from medseg.cli.options import GivenPath, device_form, error_line, escaped_line, given_model, quiet

__all__ = ["EXIT_DIFFERS", "verify"]

EXIT_DIFFERS = 3  # a check compared a file with its record and found it changed: told apart from 1, "not checked"


_HELP = """Check a segmentation's sidecar (SIDECAR, the _seg.json medseg infer wrote) against the files it names; a
folder (a batch's output folder, a cohort's results folder) is searched for its sidecars (*_seg.json, in subfolders
too), and each is checked.

Hashes the segmentation beside it, the input (the path it records, or --input: a copy elsewhere; a DICOM folder's
recorded series) and the model (the recorded package, or --model) and compares them with the recorded SHA-256; tells
the versions and the platform (CPU, its instruction set, device, GPU) that differ from the recorded ones. With --rerun,
segments the input again with the recorded precision, tile overlap, batch size and thread count and counts the voxels
whose label differs (a DICOM SEG read back onto its series). One line per check, then a last line naming the
sidecars that do not match or could not be checked. Exit code 0 when every check matches; 3 when a check found a file
changed (its SHA-256 or voxels differ from the record); else 1 when one could not be checked (a sidecar that cannot be
read, one error line, the others checked; a file not there or unreadable, a model that cannot be loaded; an --input
path that is not there, one error line, nothing checked); 2 for a usage error.

\b
$ medseg verify out/scan_seg.json
$ medseg verify results/                 # every sidecar under it
$ medseg verify out/scan_seg.json --input archive/scan.nii.gz \\
    --model my_model --rerun
"""


@click.command("verify", help=_HELP)
@click.argument("sidecars", nargs=-1, required=True, metavar="SIDECAR|FOLDER...",
                type=GivenPath(readable=False, path_type=Path))
@click.option("--input", "input_path", type=GivenPath(readable=False, path_type=Path), default=None,
              help="The input to check (default: the path the sidecar records); one SIDECAR only.")
@click.option("-m", "--model", default=None, metavar="NAME|DIR", callback=given_model,
              help="The model package to check (default: the folder the sidecar records, else the shipped model of "
                   "its name).")
@click.option("--rerun", is_flag=True, help="Segment the input again and count the voxels whose label differs.")
@click.option("--device", default="cpu", show_default=True, metavar="auto|cpu|cuda[:N]|mps", callback=device_form,
              help="Device for --rerun.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads for --rerun (default: the sidecar's cpu_threads).")
def verify(sidecars, input_path, model, rerun, device, threads):
    from medseg.errors import MedsegError
    from medseg.numbers import counted
    from medseg.verification import find_sidecars, verify_sidecar

    if input_path is not None and len(sidecars) > 1:
        raise click.UsageError("--input names the input of one SIDECAR; give one sidecar with it")
    differing: list[str] = []  # sidecars a check found changed: "<sidecar> (<checks>)"
    unchecked: list[str] = []  # sidecars that could not be read, or a check of which could not compare
    unhashed: list[str] = []  # sidecars that match, their segmentation file not compared (no SHA-256 recorded)
    found = []  # a folder given (a batch's output folder, a cohort's results folder): the sidecars under it
    for given in sidecars:
        if not given.is_dir():
            found.append(given)
            continue
        try:
            under = find_sidecars(given)
        except MedsegError as error:  # none there, or a folder that cannot be listed: fails alone
            if len(sidecars) == 1:
                raise
            click.echo(error_line(error), err=True)
            unchecked.append(f"{given} (no sidecar checked)")
            continue
        if not quiet():
            click.echo(escaped_line(f"{given}: {counted(len(under), 'sidecar')} found"), err=True)
        found += under
    # a sidecar named and found in a folder given too (or in a folder and its subfolder): checked, and counted, once
    unique: dict[str, Path] = {}
    for sidecar in found:
        unique.setdefault(os.path.realpath(sidecar), sidecar)
    found = list(unique.values())
    if input_path is not None and len(found) > 1:
        raise click.UsageError(f"--input names the input of one SIDECAR; {sidecars[0]} holds {len(found)}: give one "
                               "sidecar with it")
    total = len(found) + len(unchecked)
    for sidecar in found:
        try:
            result = verify_sidecar(sidecar, input_path, model, rerun=rerun, device=device, threads=threads)
        except MedsegError as error:  # one sidecar that cannot be read fails alone; the others are checked
            if total == 1:
                raise
            click.echo(error_line(error), err=True)
            unchecked.append(f"{sidecar} (not read)")
            continue
        for check in result.checks:
            mark = {True: "ok", False: "FAILED", None: "note"}[check.ok]
            click.echo(escaped_line(f"{sidecar}: {check.what} {mark}: {check.text}"))
        if not result.ok:
            (differing if result.differs else unchecked).append(f"{sidecar} ({', '.join(result.failed)})")
        elif not result.segmentation_checked:
            unhashed.append(str(sidecar))
    for names, verb in ((differing, "do not match"), (unchecked, "could not be checked")):
        if names:
            click.echo(escaped_line(f"medseg: {_how_many(len(names), total, verb)}: {'; '.join(names)}"), err=True)
    if unhashed:  # every check that ran matched: a full pass but for this file (exit 0)
        told = "its voxels compared by --rerun" if rerun else "--rerun compares its voxels"
        which = "" if total == 1 else f"{len(unhashed)} of {total} sidecars: "
        click.echo(escaped_line(
            f"medseg: {which}the segmentation file was not checked (no segmentation_sha256 recorded: written by "
            f"medseg before 2026-12-02; {told}): {'; '.join(unhashed)}"), err=True)
    # a difference found is told by its own code, whatever else could not be checked; an error otherwise, as always
    return EXIT_DIFFERS if differing else 1 if unchecked else 0


def _how_many(count: int, total: int, verb: str) -> str:
    """``the sidecar does not match`` (one checked), ``1 of 3 sidecars does not match``, ``2 of 3 sidecars do not
    match``; ``verb`` in its plural form (``do not match``, ``could not be checked``)."""
    if count == 1:  # the verb agrees with the one sidecar
        verb = {"do not match": "does not match"}.get(verb, verb)
        return f"the sidecar {verb}" if total == 1 else f"1 of {total} sidecars {verb}"
    return f"{count} of {total} sidecars {verb}"
