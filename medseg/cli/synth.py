"""`medseg synth`: write a synthetic phantom."""

from __future__ import annotations

from pathlib import Path

import click

from medseg.cli.options import GivenPath, escaped_line, quiet

__all__ = ["synth"]


_HELP = """Write a synthetic phantom (ellipsoid, box, tube in a noisy body) on a random grid.

\b
$ medseg synth demo/phantom.nii.gz --label demo/phantom_label.nii.gz --seed 7
"""


@click.command("synth", help=_HELP)
@click.argument("image", type=GivenPath(dir_okay=False, path_type=Path))
@click.option("--label", type=GivenPath(dir_okay=False, path_type=Path), default=None,
              help="Also write its label image to this file (default: none).")
@click.option("--shape", nargs=3, type=click.IntRange(1, 2048), default=(128, 128, 64), show_default=True,
              metavar="X Y Z", help="Voxels along each axis (at most 512³ in all; 16 or more each draw all three "
                                    "structures).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Random seed: the same seed writes the same phantom.")
@click.option("--axis-aligned", is_flag=True, help="No oblique rotation (axis permutations and flips only).")
@click.option("--overwrite", is_flag=True, help="Replace files that exist already.")
def synth(image, label, shape, seed, axis_aligned, overwrite):
    from medseg.io.atomic import atomic_paths
    from medseg.io.files import real_path
    from medseg.synthetic import write_phantom

    for path in [image] + ([label] if label else []):
        if not path.name.lower().endswith((".nii", ".nii.gz")):
            raise click.UsageError(f"{path}: phantoms are written as NIfTI; give a .nii or .nii.gz name")
    if label is not None and real_path(label) == real_path(image):
        raise click.UsageError(f"{label}: the label file would replace the image; give it another name")
    if shape[0] * shape[1] * shape[2] > 512**3:
        raise click.UsageError(f"--shape {' '.join(map(str, shape))}: more than 512³ voxels; make it smaller")
    targets = [image] + ([label] if label else [])
    with atomic_paths(targets, overwrite=overwrite) as temps:
        phantom = write_phantom(temps[0], temps[1] if label else None, shape=tuple(shape), seed=seed,
                                oblique=not axis_aligned)
    missing = phantom.missing
    if missing and not quiet():  # a grid too small to draw them: the labels would silently lack a structure
        click.echo(f"warning: --shape {' '.join(map(str, shape))} is too small for the {_listed(missing)} "
                   f"(no voxel); give 16 or more voxels per axis for all three structures", err=True)
    if not quiet():  # -q: errors only, as for the other commands' "wrote" lines
        click.echo(escaped_line(f"wrote {image}" + (f" and {label}" if label else "")))
    return 0


def _listed(names: list[str]) -> str:
    """``ellipsoid``, ``ellipsoid and the box``, ``ellipsoid, the box and the tube``."""
    return names[0] if len(names) == 1 else ", the ".join(names[:-1]) + f" and the {names[-1]}"
