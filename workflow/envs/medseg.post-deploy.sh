#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment: install medseg (with its pinned dependencies) from the
# checkout Snakemake runs in, or from $MEDSEG_SOURCE.
set -euo pipefail
src="${MEDSEG_SOURCE:-$PWD}"
if ! grep -q '^name = "medseg"' "$src/pyproject.toml" 2>/dev/null; then
    echo "medseg.post-deploy.sh: $src is not a medseg checkout; run snakemake from one or set MEDSEG_SOURCE" >&2
    exit 1
fi
# with the itk extra: a sample sheet may name NRRD and MetaImage images (SimpleITK reads them)
python -m pip install --quiet -c "$src/constraints.txt" "$src[itk]"
