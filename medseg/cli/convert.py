"""`medseg convert`: a DICOM series folder to NIfTI."""

from __future__ import annotations

from pathlib import Path

import click

from medseg.cli.options import GivenPath, escaped_line, overwrite_option, quiet, series_option

__all__ = ["convert"]


_HELP = """Convert one DICOM series (found recursively under FOLDER) to a NIfTI file.

The series is the only eligible 3D one, or the one named with --series; otherwise nothing is written
and the candidates are listed (see `medseg inspect`). Voxels are rescaled values (e.g. HU), the affine
maps voxels to RAS+ mm.

\b
$ medseg convert study/ ct.nii.gz
$ medseg convert study/ t1.nii.gz --series 3 --sidecar
"""


@click.command("convert", help=_HELP)
# not readable=True: checked by the reader, one line, exit 1 (click's own check is a usage error, exit 2)
@click.argument("folder", type=GivenPath(readable=False, path_type=Path))
@click.argument("output", type=GivenPath(dir_okay=False, path_type=Path))
@series_option
@click.option("--sidecar", is_flag=True,
              help="Also write a JSON sidecar, the output's name with .json for .nii(.gz) (t1.nii.gz: t1.json): "
                   "series, flags, policy decisions, hashes.")
@overwrite_option
def convert(folder, output, series, sidecar, overwrite):
    from medseg.io.dicom import convert_dicom
    from medseg.io.dicom_series import series_text

    if not output.name.lower().endswith((".nii", ".nii.gz")):  # a usage error (exit 2), as for synth's and evaluate's
        raise click.UsageError(f"{output}: the output must be a .nii or .nii.gz file")

    volume = convert_dicom(folder, output, series=series, overwrite=overwrite, sidecar=sidecar)
    if not quiet():
        info = volume.info
        spacing = "x".join(f"{v:.4g}" for v in volume.spacing_mm)
        flags = f" flags: {', '.join(info['flags'])}" if info["flags"] else ""
        click.echo(escaped_line(f"{folder} -> {output}: {series_text(info)} "
                                f"{'x'.join(map(str, volume.shape))} @ {spacing} mm {info['orientation']}{flags}"))
    return 0
