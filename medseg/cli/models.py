"""`medseg models`: list shipped model packages."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json: bool):
    """List the shipped model packages with their labels. A package that cannot be loaded is one error line (the
    others are listed) and the exit code is 1.

    \b
    $ medseg models
    """
    from medseg.cli.options import error_line
    from medseg.errors import ModelPackageError
    from medseg.package import DEFAULT_MODEL, codes_text, load_package, shipped_models

    rows, broken = [], 0
    for name in shipped_models():
        try:
            package = load_package(name, check_hash=False)
        except ModelPackageError as error:  # one damaged package: the others are still listed
            click.echo(error_line(error), err=True)
            broken += 1
            continue
        rows.append({
            "name": name,
            "default": name == DEFAULT_MODEL,
            "description": package.config.get("description", ""),
            "labels": {str(k): v for k, v in package.labels.items()},
            "label_codes": {str(k): v for k, v in package.label_codes.items()},
            "slice_axis": package.inference["slice_axis"],
            "weights_sha256": package.sha256,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 1 if broken else 0
    for row in rows:
        mark = " (default)" if row["default"] else ""
        labels = ", ".join(f"{k}={v}" for k, v in row["labels"].items())
        codes = codes_text(row["label_codes"])
        click.echo(f"{row['name']}{mark}: {row['description']}\n  labels: {labels}"
                   + (f"\n  DICOM SEG codes: {codes}" if codes else ""))
    return 1 if broken else 0
