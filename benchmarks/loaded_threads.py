"""torch's CPU threads on a machine that other processes keep busy: spinning, passive and one thread.

`medseg infer` (and, with --train, a few steps of `medseg train`) in subprocesses, three ways:

* spin: torch's threads spin while they wait for each other, as OpenMP's runtimes do by default (GNU OpenMP's
  300,000 turns, `GOMP_SPINCOUNT=300000`; Intel's and LLVM's 200 ms, `KMP_BLOCKTIME=200`): medseg before it set a
  passive wait;
* passive: none of those variables set, so the command line sets `OMP_WAIT_POLICY=PASSIVE` (medseg's default);
* one thread: `--threads 1` (the advice the README gave before).

Each is run --repeats times, interleaved, first with no load added, then with --load busy Python processes running
(stopped at the end, also on Ctrl-C). The figures are the medians of the sidecar's `inference_s` (the model's
`train_seconds` for --train), and the ratios of spin and one thread to passive in the same run; the labels must
be the same bytes whichever way the threads waited.

    python benchmarks/loaded_threads.py [--image scan.nii.gz --model hippocampus] [--load 2] [--repeats 3] [--train]

Without --image, a synthetic 128x128x64 phantom and the `phantom` model. With --realtime (root, or CAP_SYS_NICE),
each medseg command runs at real-time priority (`chrt -r 1`), ahead of every other process's work: the CPUs as good as
idle for it on a machine that is never idle, and so what a passive wait costs where nothing else runs (the runs
with no load added alone; others' processes get the CPUs only when medseg's threads sleep, or 5% of the time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medseg.resources import WAIT_VARIABLES
from medseg.shown_warnings import show_warnings

PREFIX: list[str] = []  # ["chrt", "-r", "1"] with --realtime
SPIN = {"GOMP_SPINCOUNT": "300000", "KMP_BLOCKTIME": "200"}  # each runtime's own default, without a wait policy
WAYS = {"spin": (SPIN, []), "passive": ({}, []), "one thread": ({}, ["--threads", "1"])}


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH")]))
    return env


def infer_once(image: Path, model: str, out: Path, extra: dict[str, str], args: list[str]) -> tuple[float, str]:
    """(inference seconds from the sidecar, SHA-256 of the labels) of one `medseg infer`."""
    command = [*PREFIX, sys.executable, "-m", "medseg", "-q", "infer", str(image), "-o", str(out), "--model", model,
               "--overwrite", *args]
    subprocess.run(command, env=_env(extra), check=True)
    sidecar = next(out.glob("*_seg.json"))
    labels = next(out.glob("*_seg.nii*"))
    return json.loads(sidecar.read_text())["timings_s"]["inference_s"], hashlib.sha256(labels.read_bytes()).hexdigest()


def train_once(data: Path, out: Path, extra: dict[str, str], args: list[str], steps: int) -> tuple[float, str]:
    """(train_seconds from the package, SHA-256 of its weights) of a short `medseg train`."""
    command = [*PREFIX, sys.executable, "-m", "medseg", "-q", "train", "--images", str(data / "images"), "--labels",
               str(data / "labels"), "-c", str(Path(__file__).resolve().parents[1] / "configs/train/phantom.json"),
               "-o", str(out), "--epochs", "1", "--steps-per-epoch", str(steps), "--overwrite", *args]
    subprocess.run(command, env=_env(extra), check=True)
    record = json.loads((out / "model.json").read_text())
    return record["training"]["train_seconds"], hashlib.sha256((out / "weights.safetensors").read_bytes()).hexdigest()


def measure(run, repeats: int, load: int, same: tuple[str, ...]) -> dict[str, list[float]]:
    """Seconds of each way, ``repeats`` runs interleaved, with ``load`` busy processes running meanwhile; the ways
    ``same`` must give the same output bytes."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    digests: dict[str, set[str]] = {way: set() for way in WAYS}
    try:
        time.sleep(1 if load else 0)
        for _ in range(repeats):
            for way, (extra, args) in WAYS.items():
                taken, digest = run(way, extra, args)
                seconds[way].append(taken)
                digests[way].add(digest)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if len(set().union(*(digests[way] for way in same))) != 1:
        raise SystemExit(f"the outputs differ between the ways the threads waited: {digests}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=None, help="Default: a synthetic 128x128x64 phantom.")
    parser.add_argument("--model", default="phantom")
    parser.add_argument("--load", type=int, default=2, help="Busy processes for the loaded runs (0: none of those).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", action="store_true", help="Also a short `medseg train` on synthetic phantoms.")
    parser.add_argument("--steps", type=int, default=4, help="Training steps of --train.")
    parser.add_argument("--realtime", action="store_true",
                        help="medseg at real-time priority (chrt -r 1), the CPUs as good as idle to it; no load added.")
    args = parser.parse_args()
    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    if args.realtime:
        PREFIX[:] = ["chrt", "-r", "1"]
        args.load = 0  # busy processes of normal priority would not get a CPU from it

    import nibabel as nib
    import numpy as np

    from medseg.synthetic import make_phantom

    work = Path(tempfile.mkdtemp(prefix="medseg-bench-"))
    image = args.image
    if image is None:
        image = work / "phantom.nii.gz"
        nib.save(nib.Nifti1Image(make_phantom((128, 128, 64), seed=3, oblique=False).image, np.eye(4)), str(image))
    if args.train:
        for folder in ("images", "labels"):
            (work / "data" / folder).mkdir(parents=True)
        for seed in range(4):
            phantom = make_phantom((64, 64, 32), seed=seed)
            nib.save(nib.Nifti1Image(phantom.image, phantom.affine), str(work / "data/images" / f"p{seed}.nii.gz"))
            nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), str(work / "data/labels" / f"p{seed}.nii.gz"))

    def folder(way: str) -> Path:
        return work / way.replace(" ", "_")

    tasks = {"infer": lambda way, extra, more: infer_once(image, args.model, folder(way), extra, more)}
    if args.train:
        tasks["train"] = lambda way, extra, more: train_once(work / "data", folder(f"model {way}"), extra, more,
                                                            args.steps)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?") if Path("/proc/cpuinfo").exists() else "?"
    print(f"{os.cpu_count()} CPUs ({cpu}); {args.repeats} runs of each way, medians; load average before: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    # inference's labels are the same bytes with one thread or two; training's weights only with the same threads
    same = {"infer": tuple(WAYS), "train": ("spin", "passive")}
    try:
        for task, run in tasks.items():
            for load in dict.fromkeys((0, args.load)):  # --load 0: the runs with no load added alone
                report(task, load, measure(run, args.repeats, load, same[task]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("the same output bytes every way (training: with the same threads)")


def report(task: str, load: int, seconds: dict[str, list[float]]) -> None:
    median = {way: statistics.median(values) for way, values in seconds.items()}
    runs = "; ".join(f"{way} {' '.join(f'{x:.2f}' for x in values)}" for way, values in seconds.items())
    print(f"{task}, {load} busy processes added (load average after {os.getloadavg()[0]:.1f}): "
          f"spin {median['spin']:.2f} s, passive {median['passive']:.2f} s, one thread "
          f"{median['one thread']:.2f} s; spin / passive {median['spin'] / median['passive']:.2f}, "
          f"one thread / passive {median['one thread'] / median['passive']:.2f}  ({runs})", flush=True)


if __name__ == "__main__":
    main()
