"""What the cohort workflow's planning costs when every case is a DICOM folder of many files.

    python benchmarks/cohort_planning.py [--cases 100] [--files-per-case 400] [--repeats 3]

Planning (``snakemake -n``: reading the sheet, loading the model package, building the jobs) identifies each
input by path, size and modification time, and a DICOM folder by those of every file in it, so that a
replaced input reruns its case. This measures that cost, in one run, with the same number of cases twice:

* a sheet of N single-file images (NIfTI-like);
* a sheet of N folders of F files each (DICOM-like);

and prints the median dry-run wall time of each, their ratio, and the extra seconds per 10 000 files. The files
are placeholders: planning reads no voxels, only names, sizes and times, and each input's header to plan the jobs'
memory (none parses here: a DICOM folder's first 64 files are tried, as a folder with no DICOM file would be).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_sheet(root: Path, name: str, cases: int, files_per_case: int) -> Path:
    """A sheet of ``cases`` images: single files when ``files_per_case`` is 0, else folders of that many files."""
    rows = ["case_id\timage\treference"]
    for index in range(cases):
        case = f"{name}{index:05d}"
        if files_per_case:
            folder = root / name / case
            folder.mkdir(parents=True)
            for k in range(files_per_case):
                (folder / f"IM{k:05d}.dcm").write_bytes(b"placeholder")
            rows.append(f"{case}\t{folder}\t")
        else:
            image = root / name / f"{case}.nii.gz"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(b"placeholder")
            rows.append(f"{case}\t{image}\t")
    sheet = root / f"{name}.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def dry_run_seconds(sheet: Path, results: Path, repeats: int) -> float:
    """Median wall time of ``snakemake -n`` on the sheet (the whole planning, no job runs)."""
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        # this interpreter's snakemake (its console script need not lie beside it: a user install, a wrapper)
        subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config",
                        f"samples={sheet}", f"results={results}"], cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - clock)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--files-per-case", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.cases < 1 or args.files_per_case < 1 or args.repeats < 1:
        parser.error("--cases, --files-per-case and --repeats must be at least 1")
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        files = write_sheet(root, "file", args.cases, 0)
        folders = write_sheet(root, "dicom", args.cases, args.files_per_case)
        single = dry_run_seconds(files, root / "results_file", args.repeats)
        many = dry_run_seconds(folders, root / "results_dicom", args.repeats)
    total = args.cases * args.files_per_case
    print(f"planning (snakemake -n, median of {args.repeats}) of {args.cases} case{'' if args.cases == 1 else 's'}")
    rows = [("single-file images", single), (f"folders of {args.files_per_case} files ({total} files)", many)]
    width = max(len(label) for label, _ in rows)
    for label, seconds in rows:
        print(f"  {label.ljust(width)}  {seconds:6.2f} s")
    print(f"  ratio {many / single:.2f}; {(many - single) / total * 10_000:.2f} s more per 10 000 files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
