"""Cross-validate a training config: one model per fold of its seeded split, then Dice per fold and over folds.

    python benchmarks/cross_validate.py CONFIG IMAGES LABELS -o OUT [--folds 0,1,2,3,4] [--threads N]

Fold ``k`` is what ``medseg train -c CONFIG --fold k`` trains: the seeded order of the cases cut into blocks of
the validation size, block ``k`` held out (fold 0 is the config's plain split). Each fold's package goes to
``OUT/fold<k>``; a folder that already holds a package whose recorded validation cases are exactly that fold's, and
whose checkpoint was started with the config's settings on the same files, is reused (one of another config is
refused, as ``medseg train --resume`` refuses it; one asked for more epochs goes on; one trained for more is
summarised with a warning), and a fold interrupted
mid-training resumes from its checkpoint, so the folds can be trained in separate
runs (or on separate machines) and summarised at the end. The
figures are the ones each package recorded when it was trained: whole validation volumes through the inference
code of ``medseg infer`` (the same numbers ``evaluate_model.py`` prints for that package). The process is set as
``medseg train``'s (torch's OpenMP threads wait passively unless the environment chose how they wait,
:func:`medseg.resources.wait_passively`, and glibc's allocator keeps freed memory,
:func:`medseg.allocator.tune_allocator`; medseg's warnings on stderr as ``warning:`` lines), so a fold's training time
is the command's.

Prints per fold the validation Dice of every label and the training time, then the mean and the standard
deviation over the folds: with equal folds the mean over folds is the mean over every case of the data set, each
scored by the one model that did not train on it.

The config is checked before any case is read, as ``medseg train -c`` checks it: an error is one line naming its file
(a ``val_fraction`` of 0, which holds out no case, included), and ``--folds`` / ``--threads`` that are not fold
numbers / positive numbers are usage errors (exit code 2). A fold's ``model.json`` that is damaged or holds no
training record of ``medseg train`` is one line naming it.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

from argument_types import positive
from stderr_line import stderr_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="training config (as for medseg train -c)")
    parser.add_argument("images", type=Path, help="folder of images")
    parser.add_argument("labels", type=Path, help="folder of labels with the same names")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the fold packages")
    parser.add_argument("--folds", type=_folds, default=None, help="comma-separated folds (default: every fold)")
    parser.add_argument("--threads", type=positive, default=None,
                        help="CPU threads, as medseg train --threads (default: torch's choice, at most a cgroup's "
                        "CPU quota)")
    parser.add_argument("--summary-only", action="store_true", help="train nothing; summarise the packages there")
    args = parser.parse_args(argv)

    from medseg.resources import set_threads, wait_passively
    from medseg.settings_named import named_as
    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr, as `medseg train` shows them (cases left out, a capped --threads)
    wait_passively()  # as `medseg train`: torch's OpenMP threads sleep while they wait; before torch is imported
    if argv is None:  # run as a script (not a caller's main(ARGS)): its allocator tuned as the medseg command's
        from medseg.allocator import tune_allocator

        tune_allocator()

    from medseg.checkpoint import check_output_folder, checkpoint_epoch
    from medseg.errors import MedsegError
    from medseg.io.dataset_json import find_dataset_json
    from medseg.numbers import counted, dice_round_text
    from medseg.package_config import CONFIG_NAME
    from medseg.package_training import CHECKPOINT_DIR, unfinished_training
    from medseg.train import train
    from medseg.train_config import check_config, read_config, seeded_split
    from medseg.train_resume import check_resume, check_trained_on
    from medseg.training_cases import load_cases, pair_cases

    with named_as({"threads": "--threads"}):  # its warning names this script's option, as medseg's own do
        set_threads(args.threads)  # as `medseg train`: given (at most the usable CPUs), or a cgroup's CPU quota
    where = str(args.config)  # errors in the config name its file, as `medseg train -c` names it
    try:
        config = read_config(args.config)
        settings = check_config(config, where)  # types and ranges, before the split reads them or a case is read
        if not settings["val_fraction"]:
            stderr_line(f"error: {where}: training.val_fraction is 0: no case is held out, so no fold has validation "
                        "cases; set it above 0 (0.2 makes five folds)")
            return 1
        pairs = pair_cases(args.images, args.labels, dataset_json=find_dataset_json(args.images, args.labels))
        training = dict(config.get("training", {}))
        _, first, _ = seeded_split(pairs, training, where)
        every = list(range(len(pairs) // len(first))) if first else [0]
        folds = args.folds or every
        loaded = None
        rows = []
        every_id = [case.case_id for case in pairs]
        for fold in folds:
            _, val, _ = seeded_split(pairs, {**training, "fold": fold}, where)
            wanted = [case.case_id for case in val]
            folder = args.output / f"fold{fold}"
            record = folder / CONFIG_NAME
            fold_config = copy.deepcopy(config)
            fold_config["training"] = {**training, "fold": fold}
            checkpoint = (folder / CHECKPOINT_DIR / "last.json").is_file()
            if record.exists():
                recorded = _recorded(record)
                if recorded.get("val_cases") != wanted:
                    stderr_line(f"{folder}: holds a package validated on other cases than fold {fold}")
                    return 1
            epochs = int(check_config(fold_config, where)["epochs"])
            done = (checkpoint_epoch(folder) or 0) if checkpoint else 0
            if checkpoint:  # a package of another config (settings, files) is not summarised as this config's
                longer = {**fold_config, "training": {**fold_config["training"], "epochs": max(done, epochs)}}
                check_resume(folder, longer, wanted, f"fold {fold}", every_id)  # (a fold trained longer is shown)
                check_trained_on(folder, pairs)
            elif record.exists():
                stderr_line(f"warning: {folder}: no {CHECKPOINT_DIR} to check that its package was trained with "
                            f"{args.config.name}; summarised as it is")
            pending = checkpoint and unfinished_training(folder) is not None
            complete = checkpoint and done >= epochs and not pending
            if args.summary_only or (record.exists() and (not checkpoint or complete)):
                if not record.exists():
                    stderr_line(f"{folder}: no package for fold {fold}")
                    return 1
                if checkpoint and (done != epochs or pending):
                    why = (f"trained for {counted(done, 'epoch')}, the config asks for {epochs}" if done != epochs
                           else "its run stopped before it wrote its package")
                    stderr_line(f"warning: {folder}: {why}; summarised as it is")
            else:
                check_output_folder(folder, overwrite=False, resume=checkpoint)
                if loaded is None:
                    loaded = load_cases(pairs, config)
                # an interrupted fold continues, one asked for more epochs goes on
                stderr_line(f"{'resuming' if checkpoint else 'training'} fold {fold} in {folder}", flush=True)
                train(fold_config, loaded, folder, resume=checkpoint)
                recorded = _recorded(record)
            rows.append((fold, len(wanted), recorded))
    except MedsegError as error:
        stderr_line(f"error: {error}")
        return 1

    names = {str(k): v for k, v in config["labels"].items() if str(k) != "0"}
    header = f"{'fold':>4} {'cases':>5}  " + "  ".join(f"{name:>10}" for name in names.values()) + "  train min"
    print(f"{args.config.name}: {counted(len(rows), 'fold')} of {counted(len(pairs), 'case')}, validation mean Dice "
          "per fold")
    print(header)
    # n/a: no Dice in the fold (the label in no validation reference and never predicted there), or too few folds
    # for an SD
    def cell(value) -> str:
        return f"{'n/a':>10}" if value is None else f"{' ' + dice_round_text(value):>10}"

    for fold, count, recorded in rows:
        dice = recorded["val_dice"]
        cells = "  ".join(cell(dice.get(k)) for k in names)
        print(f"{fold:>4} {count:>5}  {cells}  {recorded['train_seconds'] / 60:>9.1f}")
    if len(rows) > 1:
        scored = {k: [r[2]["val_dice"].get(k) for r in rows if r[2]["val_dice"].get(k) is not None] for k in names}
        means = [statistics.fmean(v) if v else None for v in scored.values()]
        spreads = [statistics.stdev(v) if len(v) > 1 else None for v in scored.values()]
        print(f"{'mean':>4} {sum(r[1] for r in rows):>5}  " + "  ".join(cell(m) for m in means))
        print(f"{'SD':>4} {'':>5}  " + "  ".join(cell(s) for s in spreads))
    return 0


def _recorded(record: Path) -> dict:
    """The ``training`` record of a fold's ``model.json``: one line naming the file where it is damaged or holds none
    (a hand-edited or foreign package), instead of a JSON traceback or a KeyError."""
    from medseg.errors import TrainingError
    from medseg.io.files import os_reason
    from medseg.jsonfile import read_json_object

    try:
        training = read_json_object(record, None, "a model package's model.json").get("training")
    except OSError as error:
        raise TrainingError(f"{record}: cannot read ({os_reason(error)})") from error
    needed = {"val_cases": list, "val_dice": dict, "train_seconds": (int, float)}
    if not isinstance(training, dict) or any(not isinstance(training.get(k), t) for k, t in needed.items()):
        raise TrainingError(f"{record}: holds no training record of medseg train (training.val_cases, val_dice, "
                            "train_seconds); train this fold again into an empty folder")
    return training


def _folds(text: str) -> list[int]:
    """``--folds 0,2``: fold numbers, whole and not negative (checked against the set's folds once it is read)."""
    folds = []
    for item in text.split(","):
        try:
            fold = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item.strip()!r} is not a fold number (give e.g. 0,1,2)") from None
        if fold < 0:
            raise argparse.ArgumentTypeError(f"{fold}: folds are numbered from 0")
        folds.append(fold)
    return folds


if __name__ == "__main__":
    sys.exit(main())
