"""`medseg verify`: does a segmentation come from the input and model its sidecar names?"""

from __future__ import annotations

import os
from pathlib import Path

import click

from medseg.cli.options import GivenPath, device_form, error_line, escaped_line, given_model, quiet

__all__ = ["verify"]


_HELP = """Check a segmentation's sidecar (SIDECAR, the _seg.json medseg infer wrote) against the files it names; a
folder (a batch's output folder, a cohort's results folder) is searched for its sidecars (*_seg.json, in subfolders
too), and each is checked.

Hashes the segmentation beside it, the input (the path it records, or --input: a copy elsewhere; a DICOM folder's
recorded series) and the model (the recorded package, or --model) and compares them with the recorded SHA-256; tells
the versions and the platform (CPU, its instruction set, device, GPU) that differ from the recorded ones. With --rerun,
segments the input again with the recorded precision, tile overlap, batch size and thread count and counts the voxels
whose label differs (a DICOM SEG read back onto its series). One line per check; exit code 0 when every check
matches, 1 when one does not; a sidecar that cannot be read is one error line, and the others are checked.

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
    failed = []
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
            failed.append(f"{given} (no sidecar checked)")
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
    total = len(found) + len(failed)
    for sidecar in found:
        try:
            result = verify_sidecar(sidecar, input_path, model, rerun=rerun, device=device, threads=threads)
        except MedsegError as error:  # one sidecar that cannot be read fails alone; the others are checked
            if total == 1:
                raise
            click.echo(error_line(error), err=True)
            failed.append(f"{sidecar} (not read)")
            continue
        for check in result.checks:
            mark = {True: "ok", False: "FAILED", None: "note"}[check.ok]
            click.echo(escaped_line(f"{sidecar}: {check.what} {mark}: {check.text}"))
        if not result.ok:
            failed.append(f"{sidecar} ({', '.join(result.failed)})")
    if failed:
        click.echo(escaped_line(f"medseg: {len(failed)} of {total} sidecars do not match: {'; '.join(failed)}"),
                   err=True)
        return 1
    return 0
