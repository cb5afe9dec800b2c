"""`medseg verify`: does a segmentation come from the input and model its sidecar names?"""

from __future__ import annotations

from pathlib import Path

import click

from medseg.cli.options import GivenPath, device_form, error_line, escaped_line, given_model

__all__ = ["verify"]


_HELP = """Check a segmentation's sidecar (SIDECAR, the _seg.json medseg infer wrote) against the files it names.

Hashes the segmentation beside it, the input (the path it records, or --input: a copy elsewhere; a DICOM folder's
recorded series) and the model (the recorded package, or --model) and compares them with the recorded SHA-256; tells
the versions and the platform (CPU, its instruction set, device, GPU) that differ from the recorded ones. With --rerun,
segments the input again with the recorded precision, tile overlap, batch size and thread count and counts the voxels
whose label differs (a DICOM SEG read back onto its series). One line per check; exit code 0 when every check
matches, 1 when one does not; a sidecar that cannot be read is one error line, and the others are checked.

\b
$ medseg verify out/scan_seg.json
$ medseg verify out/scan_seg.json --input archive/scan.nii.gz --model my_model --rerun
"""


@click.command("verify", help=_HELP)
@click.argument("sidecars", nargs=-1, required=True, metavar="SIDECAR...",
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
    from medseg.verification import verify_sidecar

    if input_path is not None and len(sidecars) > 1:
        raise click.UsageError("--input names the input of one SIDECAR; give one sidecar with it")
    failed = []
    for sidecar in sidecars:
        try:
            result = verify_sidecar(sidecar, input_path, model, rerun=rerun, device=device, threads=threads)
        except MedsegError as error:  # one sidecar that cannot be read fails alone; the others are checked
            if len(sidecars) == 1:
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
        click.echo(escaped_line(f"medseg: {len(failed)} of {len(sidecars)} sidecars do not match: {'; '.join(failed)}"),
                   err=True)
        return 1
    return 0
