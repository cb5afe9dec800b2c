"""Score a model package on a labelled folder through the code path of ``medseg infer``.

    python benchmarks/evaluate_model.py MODEL IMAGES LABELS [--cases-from model|all] [--device cpu]
        [--precision fp32] [--batch-size 32] [--threads N]

Every case goes through :func:`medseg.segment.segment_case` (read → model space → slice-wise inference →
back onto the input grid → Dice against the reference), exactly as ``medseg infer --reference`` runs it;
outputs go to a temporary folder that is removed afterwards; the process is set as ``medseg infer``'s (torch's OpenMP
threads wait passively unless the environment chose how they wait, :func:`medseg.resources.wait_passively`, and
glibc's allocator keeps freed memory, :func:`medseg.allocator.tune_allocator`; medseg's warnings on stderr as
``warning:`` lines), so its seconds are the command's. Prints per-label mean / median / min Dice
(cases where reference and prediction are both empty are left out, as the metrics policy says) and the
seconds per volume (whole case, and the inference step alone). A case that cannot be read or scored is one
``error:`` line naming its file; the others are still scored, the figures say how many were left out, and the exit
code is 1.

``--cases-from model`` restricts the run to the validation cases the package recorded when it was trained
(``training.val_cases`` in its ``model.json``): the held-out figures of the model card (a hand-edited
``val_cases`` that is not a list of case ids is one line naming the field and what it takes). With ``--cases-from all``
a note says how many of the cases are the package's training images (``training.train_images_sha256``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from argument_types import positive
from stderr_line import stderr_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="shipped model name or model package folder")
    parser.add_argument("images", type=Path, help="folder of images")
    parser.add_argument("labels", type=Path, help="folder of reference labels with the same names")
    parser.add_argument("--cases-from", choices=("model", "all"), default="model",
                        help="model: only the package's recorded validation cases (default); all: every pair")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="fp32",
                        help="autocast precision (default fp32, the figures of the model card; `medseg infer`'s "
                        "auto is fp16 on CUDA)")
    parser.add_argument("--batch-size", type=positive, default=32)
    parser.add_argument("--threads", type=positive, default=None,
                        help="CPU threads, as medseg infer --threads (default: torch's choice, at most a cgroup's CPU "
                        "quota)")
    args = parser.parse_args(argv)

    from medseg.settings_named import named_as

    # medseg's messages name this script's options (--device tpu, a capped --threads), as medseg's commands name theirs
    with named_as({"device": "--device", "precision": "--precision", "threads": "--threads"}):
        return _evaluate(args, argv)


def _evaluate(args: argparse.Namespace, argv: list[str] | None) -> int:
    """The script's run with its parsed ``args`` (``argv`` None: run as a script)."""
    from medseg.resources import set_threads, wait_passively
    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr, as `medseg infer` shows them (a package's, a capped --threads)
    wait_passively()  # as `medseg infer`: torch's OpenMP threads sleep while they wait; before torch is imported
    if argv is None:  # run as a script (not a caller's main(ARGS)): its allocator tuned as the medseg command's
        from medseg.allocator import tune_allocator

        tune_allocator()

    import torch

    from medseg.errors import MedsegError
    from medseg.inference import Segmenter
    from medseg.numbers import counted, dice_round_text
    from medseg.package import load_package
    from medseg.package_config import CONFIG_NAME
    from medseg.segment import segment_case
    from medseg.training_cases import pair_cases
    from medseg.volume import stem

    set_threads(args.threads)  # as `medseg infer` sets them: given, or at most a cgroup's CPU quota
    try:
        package = load_package(args.model)
        cases = pair_cases(args.images, args.labels, allow_unpaired=args.cases_from == "model")
        if args.cases_from == "model":
            training = package.config.get("training")
            wanted = training.get("val_cases") if isinstance(training, dict) else None
            if wanted is not None and not (isinstance(wanted, list) and all(isinstance(c, str) for c in wanted)):
                # hand-edited: a text "case3" was read as the case ids "c", "a", "s", "e", "3"
                stderr_line(f"error: {package.path / CONFIG_NAME}: training.val_cases is {_shown(wanted)}, not a "
                            'list of case ids (texts, as medseg train writes it: ["case3", "case7"]); correct it, or '
                            "use --cases-from all")
                return 1
            if not wanted:
                stderr_line(f"error: {args.model}: the package records no validation cases; use --cases-from all")
                return 1
            by_id = {case.case_id: case for case in cases}
            missing = sorted(set(wanted) - set(by_id))
            if missing:
                images = {stem(p) for p in args.images.iterdir()}
                folder, what = ((args.labels, "label") if {missing[0], f"{missing[0]}_0000"} & images
                                else (args.images, "image"))
                lost = counted(len(missing), "validation case")
                stderr_line(f"error: {folder}: {lost} missing, e.g. {missing[0]} (no {what}; "
                            f"the package lists its validation cases under training.val_cases; --cases-from all scores "
                            "every pair in the folders instead)")
                return 1
            cases = [by_id[name] for name in wanted]
        segmenter = Segmenter(package, device=args.device, precision=args.precision, batch_size=args.batch_size)
        labels = {k: v for k, v in package.labels.items() if k != 0}
        dice: dict[int, list[float]] = {k: [] for k in labels}
        seconds, inference_seconds = [], []
        trained_on = 0  # cases whose image is one of the package's training images
        failed = 0  # a case that cannot be read or scored is told and left out of the figures, which say so
        with tempfile.TemporaryDirectory() as tmp:
            for case in cases:
                clock = time.perf_counter()
                try:
                    outputs = segment_case(case.image_path, segmenter, out_dir=tmp, overwrite=True,
                                           reference=case.label_path, case_id=case.case_id)
                except MedsegError as error:
                    stderr_line(f"error: {error}")
                    failed += 1
                    continue
                seconds.append(time.perf_counter() - clock)
                inference_seconds.append(outputs.record["timings_s"]["inference_s"])
                trained_on += outputs.record.get("in_training_set") is True
                for value in labels:
                    score = outputs.record["metrics"]["labels"][str(value)]["dice"]
                    if not math.isnan(score):
                        dice[value].append(score)
    except MedsegError as error:
        stderr_line(f"error: {error}")
        return 1

    left_out = f" ({failed} failed, not in the figures)" if failed else ""
    print(f"model {package.name} ({package.path}), {counted(len(cases), 'case')}{left_out} from {args.images} "
          f"({'recorded validation split' if args.cases_from == 'model' else 'all pairs'}), "
          f"device {segmenter.device_choice.device}, precision {segmenter.precision}, flip TTA {segmenter.flips}")
    print(f"{'label':<14}{'n':>5}{'mean Dice':>11}{'median':>9}{'min':>8}")
    for value, name in labels.items():
        scores = dice[value]
        if scores:
            figures = (statistics.fmean(scores), statistics.median(scores), min(scores))
            cells = [" " + dice_round_text(v) for v in figures]  # a space apart, however many digits
            print(f"{name:<14}{len(scores):>5}{cells[0]:>11}{cells[1]:>9}{cells[2]:>8}")
        else:
            print(f"{name:<14}{0:>5}{'n/a':>11}")
    if trained_on:  # --cases-from all over the training folders: not the model's accuracy on new data
        which = (f"{trained_on} of these cases are the model's training images (their SHA-256 is" if trained_on > 1
                 else f"{'the one case' if len(cases) == 1 else '1 of these cases'} is one of the model's training "
                      "images (its SHA-256 is")
        print(f"note: {which} in its package): the figures overstate its accuracy on new data; --cases-from model "
              "scores its held-out cases")
    if seconds:
        print(f"seconds per volume: {statistics.fmean(seconds):.3f} whole case, "
              f"{statistics.fmean(inference_seconds):.3f} inference (torch threads {torch.get_num_threads()})")
    return 1 if failed else 0


def _shown(value) -> str:
    """A hand-edited ``model.json`` value as JSON, shortened to one short phrase."""
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


if __name__ == "__main__":
    sys.exit(main())
