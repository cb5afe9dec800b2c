"""Cohort workflow speed: the Snakefile on N synthetic cases and C cores, against running each case on its own.

    python benchmarks/cohort_speed.py [--count 20] [--cores 2] [--cases-per-job 10] [--also-per-case]

Measured in one run, on the CPU, one torch thread per job:

* single-case time: the wall time of ``medseg infer CASE --reference REF`` for each case alone (python start,
  imports, model load, inference, scoring, writing); their sum / C is the time of C perfect parallel streams;
* the workflow: ``snakemake --cores C`` from nothing to the QA report; ratio = workflow / (sum / C)
  (target at most 1.15);
* the in-process compute of each case (the sidecar's timings and the scoring, no start-up), and the start-up
  overhead of every job (its Snakemake benchmark wall time minus the time spent in its cases);
* with --also-per-case, the workflow once more with one case per job, to show what batching saves;
* with --parallel-baseline, the single-case runs once more as C parallel streams (wall time measured): on a
  machine shared with other work, C free cores are not guaranteed and this is the fair comparison.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medseg.shown_warnings import show_warnings
from medseg.synthetic import write_phantom

REPO = Path(__file__).resolve().parents[1]


STARTUP_STEPS = {
    "python": "pass",
    "python + torch": "import torch",
    "python + torch + MONAI + medseg": "import torch, monai.transforms, monai.inferers, medseg.inference",
}


def startup_breakdown() -> dict[str, float]:
    """Wall time of fresh interpreters that import more and more (median of three), and the model build."""
    out = {}
    for label, code in STARTUP_STEPS.items():
        times = []
        for _ in range(3):
            clock = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=one_thread())
            times.append(time.perf_counter() - clock)
        out[label] = sorted(times)[1]
    return out


def model_build_seconds(model: str) -> float:
    code = ("import time, torch; from medseg.inference import Segmenter; from medseg.package import load_package; "
            f"t = time.perf_counter(); Segmenter(load_package({model!r}), device='cpu'); "
            "print(time.perf_counter() - t)")
    run = subprocess.run([sys.executable, "-c", code], check=True, env=one_thread(), capture_output=True, text=True)
    return float(run.stdout.strip())


def make_cohort(folder: Path, count: int, shape: tuple[int, int, int]) -> Path:
    rows = []
    for i in range(count):
        name = f"case{i + 1:02d}"
        write_phantom(folder / f"{name}.nii.gz", folder / f"{name}_label.nii.gz", shape=shape, seed=500 + i)
        rows.append(f"{name}\t{name}.nii.gz\t{name}_label.nii.gz\n")
    sheet = folder / "samples.tsv"
    sheet.write_text("case_id\timage\treference\n" + "".join(rows))
    return sheet


def one_thread() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def single_case(folder: Path, out: Path, index: int, model: str) -> tuple[float, float]:
    """Wall time of `medseg infer` on one case alone, and the in-process compute it reports (sidecar timings)."""
    name = f"case{index + 1:02d}"
    command = [sys.executable, "-m", "medseg", "-q", "infer", str(folder / f"{name}.nii.gz"), "-o", str(out),
               "--reference", str(folder / f"{name}_label.nii.gz"), "--model", model, "--device", "cpu",
               "--overwrite"]
    clock = time.perf_counter()
    subprocess.run(command, check=True, env=one_thread())
    wall = time.perf_counter() - clock
    timings = json.loads((out / f"{name}_seg.json").read_text())["timings_s"]
    return wall, sum(timings.values())


def single_case_times(folder: Path, count: int, model: str) -> tuple[list[float], list[float]]:
    results = [single_case(folder, folder / "single", i, model) for i in range(count)]
    return [r[0] for r in results], [r[1] for r in results]


def parallel_streams(folder: Path, count: int, model: str, streams: int) -> float:
    """Wall time of all single-case runs, ``streams`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    clock = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        list(pool.map(lambda i: single_case(folder, folder / "streams", i, model), range(count)))
    return time.perf_counter() - clock


def run_workflow(folder: Path, sheet: Path, results: Path, cores: int, cases_per_job: int, model: str) -> float:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(folder),
               "--cores", str(cores), "--config", f"samples={sheet}", f"results={results}",
               f"model={model}", f"cases_per_job={cases_per_job}", "threads=1", "device=cpu"]
    clock = time.perf_counter()
    run = subprocess.run(command, env=one_thread(), capture_output=True, text=True)
    wall = time.perf_counter() - clock
    if run.returncode != 0:
        sys.exit(f"snakemake failed:\n{run.stderr[-3000:]}")
    return wall


def job_overheads(results: Path) -> dict[str, list[float]]:
    """Per rule: each job's benchmark wall time minus the seconds its cases took (imports, model, start-up)."""
    out: dict[str, list[float]] = {}
    for stage in ("infer", "evaluate"):
        for bench in sorted((results / "benchmarks" / stage).glob("*.tsv")):
            with open(bench, newline="") as handle:
                wall = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
            record = json.loads((results / "jobs" / f"{bench.stem}.{stage}.json").read_text())
            out.setdefault(stage, []).append(wall - sum(case["seconds"] for case in record["cases"]))
    return out


def report_seconds(results: Path) -> float:
    with open(results / "benchmarks" / "report.tsv", newline="") as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--cases-per-job", type=int, default=None, help="default: count / cores")
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 128, 64))
    parser.add_argument("--model", default="phantom")
    parser.add_argument("--also-per-case", action="store_true", help="also run with one case per job")
    parser.add_argument("--parallel-baseline", action="store_true",
                        help="also time the single-case runs as `cores` parallel streams")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp dir)")
    args = parser.parse_args()
    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    per_job = args.cases_per_job or -(-args.count // args.cores)
    if importlib.util.find_spec("snakemake") is None:  # before minutes of single-case runs, not after them
        sys.exit("cohort_speed.py: snakemake is not installed in this environment (pip install -e '.[workflow]')")

    with tempfile.TemporaryDirectory(prefix="cohort_speed_") as temp:
        folder = args.workdir or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        sheet = make_cohort(folder, args.count, tuple(args.shape))
        print(f"{args.count} phantoms {tuple(args.shape)}, {args.cores} cores, model {args.model}, CPU, 1 thread/job")

        steps = startup_breakdown()
        steps["model package load + network build (in process)"] = model_build_seconds(args.model)
        print("start-up of one job (median of 3 fresh interpreters):")
        for label, seconds in steps.items():
            print(f"  {label}: {seconds:.2f} s")

        walls, compute = single_case_times(folder, args.count, args.model)
        ideal = sum(walls) / args.cores
        print(f"single-case medseg infer (alone, with --reference): mean {sum(walls) / len(walls):.2f} s, "
              f"sum {sum(walls):.1f} s; of which in-process compute mean {sum(compute) / len(compute):.2f} s")

        streams = None
        if args.parallel_baseline:
            streams = parallel_streams(folder, args.count, args.model, args.cores)
            print(f"single-case medseg infer as {args.cores} parallel streams: {streams:.1f} s wall "
                  f"(sum / {args.cores} predicts {ideal:.1f} s)")

        runs = [per_job] + ([1] if args.also_per_case and per_job != 1 else [])
        for cases_per_job in runs:
            results = folder / f"results_{cases_per_job}"
            wall = run_workflow(folder, sheet, results, args.cores, cases_per_job, args.model)
            overheads = job_overheads(results)
            print(f"\nworkflow, cases_per_job={cases_per_job}: {wall:.1f} s wall "
                  f"(report rule {report_seconds(results):.1f} s)")
            for stage, values in overheads.items():
                mean = sum(values) / len(values)
                print(f"  {stage}: {len(values)} jobs, overhead per job (wall - time in cases) mean {mean:.2f} s")
            print(f"  ratio workflow / (sum of single-case times / {args.cores}) = {wall:.1f} / {ideal:.1f} = "
                  f"{wall / ideal:.2f}  (target <= 1.15)")
            if streams is not None:
                print(f"  ratio workflow / ({args.cores} parallel streams of single-case runs, measured) = "
                      f"{wall:.1f} / {streams:.1f} = {wall / streams:.2f}")
            floor = sum(compute) / args.cores
            print(f"  ratio workflow / (sum of in-process compute / {args.cores}) = {wall:.1f} / {floor:.1f} = "
                  f"{wall / floor:.2f}  (1.0 = no overhead at all)")


if __name__ == "__main__":
    main()
