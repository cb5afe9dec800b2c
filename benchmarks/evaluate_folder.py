"""What scoring a folder of cases in one command saves: ``medseg evaluate PRED_DIR REF_DIR -o OUT`` against one
``medseg evaluate PRED REF -o OUT/`` call per case, on real hippocampus labels.

    python benchmarks/evaluate_folder.py $HIPPO [--cases 20] [--predictions DIR]

``$HIPPO`` holds ``labels/`` (the Decathlon hippocampus labels; see the README's shipped model). Predictions are
``--predictions`` (``<case>_seg.nii.gz``, e.g. ``medseg infer`` output), else the first ``--cases`` labels shifted by
one voxel along the first axis. Both ways run as subprocesses (interpreter start and imports counted, as a user
pays them), write into fresh folders, and must give identical per-case label figures; prints the seconds of each
and their ratio, measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="folder holding labels/")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--predictions", type=Path, default=None, help="folder of <case>_seg.nii.gz")
    args = parser.parse_args()

    import nibabel as nib
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="evaluate_folder_"))
    refs, preds = work / "refs", work / "preds"
    refs.mkdir()
    if args.predictions is not None:
        preds = args.predictions
        names = sorted(p.name.removesuffix("_seg.nii.gz") for p in preds.glob("*_seg.nii.gz"))[: args.cases]
    else:
        preds.mkdir()
        names = sorted(p.name.removesuffix(".nii.gz") for p in (args.data / "labels").glob("*.nii.gz"))[: args.cases]
        for name in names:
            image = nib.load(args.data / "labels" / f"{name}.nii.gz")
            shifted = np.roll(np.asarray(image.dataobj), 1, axis=0).astype(np.uint8)
            nib.save(nib.Nifti1Image(shifted, image.affine), preds / f"{name}_seg.nii.gz")
    for name in names:
        (refs / f"{name}.nii.gz").symlink_to((args.data / "labels" / f"{name}.nii.gz").resolve())
    command = [sys.executable, "-m", "medseg", "-q", "evaluate"]

    clock = time.perf_counter()
    subprocess.run([*command, str(preds), str(refs), "-o", str(work / "folder")], check=True)
    folder_s = time.perf_counter() - clock
    clock = time.perf_counter()
    for name in names:
        subprocess.run([*command, str(preds / f"{name}_seg.nii.gz"), str(refs / f"{name}.nii.gz"), "-o",
                        f"{work / 'single'}/"], check=True)
    single_s = time.perf_counter() - clock

    differing = [name for name in names
                 if json.loads((work / "folder" / f"{name}_metrics.json").read_text())["labels"]
                 != json.loads((work / "single" / f"{name}_metrics.json").read_text())["labels"]]
    print(json.dumps({"cases": len(names), "folder_s": round(folder_s, 2), "single_calls_s": round(single_s, 2),
                      "single_calls_per_folder": round(single_s / folder_s, 2), "records_differing": len(differing),
                      "work": str(work)}, indent=2))
    if differing:
        from medseg.one_line import escaped_line

        sys.exit(escaped_line(f"records differ for {', '.join(differing)}"))  # one line, whatever the case names


if __name__ == "__main__":
    main()
