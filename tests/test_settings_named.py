"""A library message names a setting as its caller gives it: a Python caller's keyword argument
(``overwrite=True``), the command line's option (``--overwrite``) while a command runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from medseg.errors import DeviceError, DicomError, ImageReadError, OutputExistsError
from medseg.settings_named import ANY, named_as, same_run_with, setting, setting_choices


def test_a_setting_is_named_as_the_keyword_argument_unless_the_command_line_names_it():
    assert (setting("overwrite"), setting("device", "cpu"), setting("series", ANY)) == (
        "overwrite=True", "device='cpu'", "series=...")
    assert setting_choices("device", "cpu", "auto") == "device='cpu' or 'auto'"
    assert setting_choices("device", "mps", "cpu", "auto") == "device='mps', 'cpu' or 'auto'"
    with named_as({"overwrite": "--overwrite", "device": "--device", "series": "--series"}):
        assert (setting("overwrite"), setting("device", "cpu"), setting("series", ANY)) == (
            "--overwrite", "--device cpu", "--series")
        assert setting_choices("device", "cpu", "auto") == "--device cpu or auto"
        assert setting_choices("device", "mps", "cpu", "auto") == "--device mps, cpu or auto"
        assert setting("resume") == "resume=True"  # no option of the command line's: the argument
        with named_as({}):
            assert setting("overwrite") == "overwrite=True"
        assert setting("overwrite") == "--overwrite"
    assert setting("overwrite") == "overwrite=True"  # the names before it back
    assert same_run_with("resume") == "the same call with resume=True"
    with named_as({"resume": "--resume"}):
        assert same_run_with("resume") == "the same command with --resume"


def test_segment_case_over_its_outputs_says_overwrite_true(tmp_path, case, make_package, capsys):
    """`segment_case` told a Python caller to "pass --overwrite", an option it cannot give; `medseg infer` keeps
    saying it."""
    from medseg.inference import Segmenter
    from medseg.segment import segment_case

    package = str(make_package())
    out = tmp_path / "out"
    segmenter = Segmenter(package, device="cpu")
    segment_case(case, segmenter, out_dir=out)
    with pytest.raises(OutputExistsError) as refused:
        segment_case(case, segmenter, out_dir=out)
    assert str(refused.value) == f"{out / 'case_seg.nii.gz'}: output exists already; pass overwrite=True to replace it"
    code, _, err = run_cli(["infer", str(case), "-m", package, "-o", str(out), "--device", "cpu"], capsys)
    assert (code, err) == (1, f"medseg: error: {out / 'case_seg.nii.gz'}: output exists already; pass --overwrite to "
                              "replace it; case_seg.json exists too\n")


def test_a_device_not_there_is_named_as_the_device_argument(monkeypatch):
    import torch

    from medseg.inference import Segmenter

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as refused:
        Segmenter("phantom", device="cuda")
    assert str(refused.value).startswith("device='cuda': CUDA is not available on this machine")
    assert "--device" not in str(refused.value)
    with pytest.raises(DeviceError) as refused:
        Segmenter("phantom", device="tpu")
    assert str(refused.value) == "device='tpu': expected auto, cpu, cuda, cuda:N or mps"


def test_a_series_is_named_as_the_series_argument(tmp_path, case):
    from dicom_factory import make_series

    from medseg.io.images import read_image

    with pytest.raises(ImageReadError) as refused:
        read_image(case, series="3")
    assert str(refused.value) == f"{case}: series=... applies to DICOM folders only"
    study = tmp_path / "study"
    make_series(study / "s3", seed=0, series_number=3, description="T1", series_uid="1.2.3.3")
    make_series(study / "s4", seed=1, series_number=4, description="T2", series_uid="1.2.3.4")
    with pytest.raises(DicomError) as refused:
        read_image(study)
    assert str(refused.value).startswith(f"{study}: 2 eligible series, choose one with series=... (in a sample sheet: "
                                         "the series column)")


def test_training_into_a_package_says_overwrite_true(tmp_path, make_package):
    from medseg.checkpoint import check_output_folder

    package = make_package()
    with pytest.raises(OutputExistsError) as refused:
        check_output_folder(package)
    assert str(refused.value) == (f"{package}: holds a model package already, and no checkpoint of its training to "
                                  "resume; pass overwrite=True to replace it")
    assert "--" not in str(refused.value)


def test_precision_threads_and_output_format_are_named_as_arguments(tmp_path, case, make_package):
    from medseg.errors import InputError
    from medseg.inference import Segmenter
    from medseg.resources import set_threads
    from medseg.segment import segment_case

    with pytest.raises(DeviceError) as refused:
        Segmenter(make_package(), device="cpu", precision="fp16")
    assert str(refused.value) == "precision='fp16' needs a CUDA device (got cpu); use bf16 or fp32"
    with pytest.raises(InputError) as refused:
        set_threads(0)
    assert str(refused.value) == "threads=0: give a whole number of CPU threads, 1 or more"
    segmenter = Segmenter(make_package(), device="cpu")
    with pytest.raises(InputError) as refused:
        segment_case(case, segmenter, out_dir=tmp_path / "out", output_format="dicom-seg")
    assert str(refused.value) == (f"{case}: output_format='dicom-seg' needs a DICOM series folder as input")
    with named_as({"precision": "--precision", "threads": "--threads", "output_format": "--format"}):
        with pytest.raises(InputError) as refused:
            set_threads(0)
    assert str(refused.value) == "--threads 0: give a whole number of CPU threads, 1 or more"


def test_bf16_emulated_on_the_cpu_is_warned_of_as_the_precision_argument(make_package, monkeypatch, caplog):
    """A Segmenter asked for bf16 on a CPU that emulates it warned a Python caller of "--precision bf16", an option
    it cannot give; under medseg's commands the warning names the option."""
    import logging

    import medseg.inference as inference
    from medseg.cli.options import OPTION_NAMES

    monkeypatch.setattr(inference, "native_bf16", lambda device: False)  # a CPU without AVX-512 BF16 or AMX
    package = make_package()
    slow = (": this CPU has no AVX-512 BF16 or AMX, so bf16 runs emulated, several times slower than fp32; use fp32 "
            "(or auto)")
    with caplog.at_level(logging.WARNING, logger="medseg"):
        inference.Segmenter(package, device="cpu", precision="bf16")
        with named_as(OPTION_NAMES):
            inference.Segmenter(package, device="cpu", precision="bf16")
    assert [r.getMessage() for r in caplog.records] == [f"precision='bf16'{slow}", f"--precision bf16{slow}"]


def test_a_command_run_in_a_worker_thread_names_its_options_and_starts_no_thread_of_its_own(tmp_path, case,
                                                                                           make_package, capsys):
    """The option names are a context variable, which a ``threading.Thread`` (a thread pool's too) does not inherit:
    a message worded in a thread that a command started would name the keyword arguments (``overwrite=True``) on the
    command line. A command (segmenting, scoring, refusing to overwrite) runs none of medseg's code in a thread it
    starts (SciPy's KD-tree queries of the surface distances start threads of their own, which word no message);
    run from a thread of a caller's own (a GUI, a workflow's job thread), it names its options there, and the
    caller's other threads keep the keyword arguments."""
    import threading

    import nibabel as nib
    import numpy as np

    from medseg.synthetic import make_phantom

    reference = tmp_path / "case_label.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels, np.diag([1.0, 1.0, 2.0, 1.0])), str(reference))
    out, package = tmp_path / "out", str(make_package())
    args = ["infer", str(case), "-m", package, "-o", str(out), "--reference", str(reference), "--device", "cpu"]
    started, codes, seen_beside = set(), [], []

    def record(frame, event, arg):  # medseg's code run in a thread started while the command runs
        if event == "call" and frame.f_globals.get("__name__", "").partition(".")[0] == "medseg":
            started.add(f"{threading.current_thread().name}: {frame.f_globals['__name__']}.{frame.f_code.co_name}")

    def worker():
        threading.setprofile(record)  # threads started from here on by threading (pools too) are watched
        try:
            for _ in range(2):
                try:
                    from medseg.cli import main

                    main(args)
                except SystemExit as stop:
                    codes.append(stop.code)
        finally:
            threading.setprofile(None)

    thread = threading.Thread(target=worker, name="caller's worker")
    thread.start()
    seen_beside.append(setting("overwrite"))  # this thread, while the command may be running in the other
    thread.join()
    err = capsys.readouterr().err
    assert codes == [0, 1] and started == set()
    assert err.splitlines()[-1] == (f"medseg: error: {out / 'case_seg.nii.gz'}: output exists already; pass "
                                    "--overwrite to replace it; case_seg.json and case_metrics.json exist too")
    assert seen_beside == ["overwrite=True"] and setting("overwrite") == "overwrite=True"


def test_messages_beyond_the_first_name_a_python_callers_arguments_and_a_commands_options(tmp_path, monkeypatch):
    """Messages that named the command line's options whoever called: a model given as an input (``-m``), outputs
    that would replace an input (``-o``), a package's unfinished training (``medseg train --resume``), images and
    labels swapped (``--images``/``--labels``), the epochs (``--epochs``). A Python caller now reads its arguments,
    each command its own options."""
    from medseg.batch_outputs import check_batch_outputs
    from medseg.cli.options import COMMAND_OPTIONS
    from medseg.errors import ConflictingInputsError
    from medseg.numbers import image_among_labels
    from medseg.package import _resumed
    from medseg.train_resume import _epochs_asked

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConflictingInputsError) as refused:
        check_batch_outputs([Path("hippocampus")], None, False, "nifti", True)
    assert str(refused.value) == ("hippocampus: no such file or folder, but the name of a shipped model: give a model "
                                  "with package=... (package='hippocampus')")
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"")
    with pytest.raises(ConflictingInputsError) as refused:
        check_batch_outputs([scan], tmp_path, False, "nifti", True, references=[tmp_path / "scan_seg.nii.gz"])
    assert str(refused.value).endswith("; write the outputs elsewhere (out_dir=...)")
    python = ("; so many values suggest an image rather than labels (are images_dir=... and labels_dir=... swapped?)",
              "medseg.train.train with the same arguments and resume=True", "training.epochs")
    assert (image_among_labels(), _resumed(), _epochs_asked()) == python
    with named_as(COMMAND_OPTIONS["train"], "train"):
        assert (image_among_labels(), _resumed(), _epochs_asked()) == (
            "; so many values suggest an image rather than labels (are --images and --labels swapped?)",
            "the same command with --resume", "--epochs / training.epochs")
        assert setting("epochs", 30, python="training.epochs: {value}") == "--epochs 30"
    assert setting("epochs", 30, python="training.epochs: {value}") == "training.epochs: 30"
    with named_as(COMMAND_OPTIONS["infer"], "infer"):  # a package's unfinished training, met by infer
        assert _resumed() == "medseg train --resume with the same command"
        with pytest.raises(ConflictingInputsError) as refused:
            check_batch_outputs([Path("hippocampus")], None, False, "nifti", True)
    assert str(refused.value).endswith("give a model with -m (-m hippocampus)")


def test_a_package_a_prediction_was_not_made_by_is_named_as_the_callers_package_argument(tmp_path):
    """Scoring's default named the package ``--model`` for a Python caller of score_prediction or score_folder."""
    from medseg.errors import ModelMismatchError
    from medseg.package import load_package
    from medseg.scoring import MadeBy, check_made_by

    package = load_package("phantom")
    other = MadeBy(sidecar=tmp_path / "case_seg.json", model="hippocampus")
    with pytest.raises(ModelMismatchError) as refused:
        check_made_by(tmp_path / "case_seg.nii.gz", other, package)
    assert str(refused.value).endswith("not 'phantom'; pass package='hippocampus' or leave package=... out")
    relabelled = MadeBy(sidecar=tmp_path / "case_seg.json", model="phantom", labels={0: "background", 1: "x"})
    with pytest.raises(ModelMismatchError) as refused:
        check_made_by(tmp_path / "case_seg.nii.gz", relabelled, package)
    assert "but package='phantom' has 1 ellipsoid, 2 box, 3 tube;" in str(refused.value)
    assert str(refused.value).endswith("pass the package that made it, or leave package=... out")
    with pytest.raises(ModelMismatchError) as refused:  # as the command line gives it, it names it
        check_made_by(tmp_path / "case_seg.nii.gz", other, package, "--model phantom")
    assert str(refused.value).endswith("; pass --model hippocampus or leave --model out")


def test_each_command_names_only_options_it_has():
    """One list of option names for every command let a message in `medseg cohort infer` name --overwrite, which
    that command lacks: each command installs the options it has, as its parameters declare them. Every option of
    each command is placed: a setting the library names, or the command's own (only the first direction was checked:
    a new option in neither list passed)."""
    import click

    from medseg.cli import COMMANDS, cli
    from medseg.cli.options import COMMAND_ONLY, COMMAND_OPTIONS, ELSEWHERE

    context = click.Context(cli)
    commands = {}
    for name in COMMANDS:
        command = cli.get_command(context, name)
        if isinstance(command, click.Group):
            commands.update({f"{name} {sub}": command.get_command(context, sub)
                             for sub in command.list_commands(context)})
        else:
            commands[name] = command
    assert set(COMMAND_OPTIONS) == set(commands) == set(COMMAND_ONLY)
    for name, options in COMMAND_OPTIONS.items():
        declared = {opt for param in commands[name].params for opt in (*param.opts, *param.secondary_opts)}
        assert set(options.values()) <= declared, name
        assert not set(ELSEWHERE.get(name, {})) & set(options), name  # elsewhere only what no option gives
        # and the other way: each option of the command is either a setting the library names (COMMAND_OPTIONS) or
        # one of the command's own (COMMAND_ONLY), never both: an option added to a command and to neither list (a
        # setting its messages would name as a keyword argument the command "has no option for") fails here
        for param in commands[name].params:
            if not isinstance(param, click.Option):
                continue
            opts = set(param.opts) | set(param.secondary_opts)
            placed = (bool(opts & set(options.values())), bool(opts & set(COMMAND_ONLY[name])))
            assert placed in ((True, False), (False, True)), (name, param.opts, placed)
        assert set(COMMAND_ONLY[name]) <= declared, name
    assert {"--in-workflow", "--in-run"} <= set(COMMAND_ONLY["cohort infer"]) & set(COMMAND_ONLY["cohort evaluate"])
    assert "overwrite" not in COMMAND_OPTIONS["cohort infer"] and "series" not in COMMAND_OPTIONS["cohort infer"]


def test_a_setting_the_command_lacks_is_named_where_its_user_gives_it_or_as_no_option_of_it():
    from medseg.cli.options import COMMAND_OPTIONS, ELSEWHERE

    with named_as(COMMAND_OPTIONS["cohort infer"], "cohort infer", ELSEWHERE["cohort infer"]):
        assert (setting("device", "cpu"), setting("series", ANY)) == ("--device cpu",
                                                                      "the sample sheet's series column")
        assert setting("overwrite") == ("overwrite=True (a keyword argument of medseg's Python functions; medseg "
                                        "cohort infer has no option for it)")
        assert same_run_with("resume").startswith("the same run with resume=True (a keyword argument")
    with named_as(COMMAND_OPTIONS["cohort evaluate"], "cohort evaluate", ELSEWHERE["cohort evaluate"]):
        assert setting("package", "phantom") == "model: phantom in the workflow config"


def test_a_cohort_step_run_by_the_workflow_names_the_workflows_settings():
    """A cohort step run as a job of the workflow (--in-workflow) named its own options (--batch-size, --device cuda,
    "use --device cpu or auto") to a user who sets batch_size: and device: in the workflow config; it names those, and
    each setting it replaces is one the step has an option for."""
    import click

    from medseg.cli import cli
    from medseg.cli.options import COMMAND_OPTIONS, IN_WORKFLOW, name_options

    for command, names in IN_WORKFLOW.items():
        assert set(names) <= set(COMMAND_OPTIONS[command]), command
    with click.Context(cli) as ctx:
        name_options(ctx, "cohort infer", in_workflow=True)
        assert (setting("batch_size", ANY), setting("device", "cuda"), setting_choices("device", "cpu", "auto"),
                setting("package", "phantom"), setting("series", ANY)) == (
            "batch_size: ... in the workflow config", "device: cuda in the workflow config",
            "device: cpu or auto in the workflow config", "model: phantom in the workflow config",
            "the sample sheet's series column")
    with click.Context(cli) as ctx:
        name_options(ctx, "cohort evaluate", in_workflow=True)
        assert setting("threads", 2) == "Snakemake's --set-threads evaluate=2"
    with click.Context(cli) as ctx:  # the step run by hand names its options
        name_options(ctx, "cohort infer")
        assert (setting("batch_size", ANY), setting_choices("device", "cpu", "auto")) == (
            "--batch-size", "--device cpu or auto")
    assert setting("batch_size", 8) == "batch_size=8"


def test_a_cohort_step_names_the_sheets_series_column_not_an_option_it_lacks(tmp_path, capsys):
    """`medseg cohort infer` on a study of two series without a series column recorded "choose one with --series",
    an option of `medseg infer` that the cohort step lacks; now the sample sheet's column, named once."""
    import json

    from dicom_factory import make_series

    make_series(tmp_path / "study" / "s3", seed=0, series_number=3, description="T1", series_uid="1.2.3.3")
    make_series(tmp_path / "study" / "s4", seed=1, series_number=4, description="T2", series_uid="1.2.3.4")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\ns\tstudy\n")
    results = tmp_path / "results"
    code, out, _ = run_cli(["cohort", "infer", str(sheet), "-o", str(results), "--model", "phantom",
                            "--device", "cpu"], capsys)
    failure = json.loads((results / "cases" / "s" / "s_failed.json").read_text())
    said = f"{tmp_path / 'study'}: 2 eligible series, choose one with the sample sheet's series column, or give"
    assert code == 0 and said in out and said in json.dumps(failure)
    assert "--series" not in out and "(in a sample sheet" not in out


def test_a_thread_started_while_a_command_runs_names_its_options_when_carried():
    """A thread starts in an empty context: a message worded in it named the keyword arguments though a command ran.
    Its work run through ``carried`` names the command's options; medseg starts every thread of its own so."""
    import ast
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import medseg
    from medseg.cli.options import COMMAND_OPTIONS
    from medseg.errors import InputError
    from medseg.resources import set_threads
    from medseg.settings_named import carried

    said = {}

    def refused(key):
        try:
            set_threads(0)
        except InputError as error:
            said[key] = str(error)

    with named_as(COMMAND_OPTIONS["infer"], "infer"):
        plain = threading.Thread(target=refused, args=("plain",))
        kept = threading.Thread(target=carried(refused), args=("carried",))
        for thread in (plain, kept):
            thread.start()
            thread.join()
        with ThreadPoolExecutor(1) as pool:
            pool.submit(carried(refused), "pool").result()
    threads = "give a whole number of CPU threads, 1 or more"
    assert said == {"plain": f"threads=0: {threads}", "carried": f"--threads 0: {threads}",
                    "pool": f"--threads 0: {threads}"}
    started = []  # each thread medseg starts: its target carried
    for path in Path(medseg.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("threading.Thread", "Thread"):
                target = next(k.value for k in node.keywords if k.arg == "target")
                started.append((path.name, ast.unparse(target)))
    assert started == [("infer.py", "carried(self._tick)")]


# option names a library message may still say: another program's (Snakemake's, SLURM's, git's), or medseg's with
# the command that has it named beside it (``medseg evaluate -o ... --overwrite``), or a record's text (a sidecar's
# "chosen with --series 3"), whoever reads it
_OPTIONS_ALLOWED = {
    "checkout.py": {"--no-optional-locks", "--porcelain", "--untracked-files"},
    "io/files.py": {"--include"},
    "memory_guard.py": {"--mem"},  # a SLURM job's --mem
    # the selection a sidecar records; "`medseg models DIR` describes it, and `medseg infer -m DIR` segments with it"
    "io/dicom_series.py": {"--series", "-m"},
    "io/seg_reading.py": {"--sidecar"},  # "medseg convert without --sidecar"
    "package.py": {"--resume"},  # "medseg train --resume", said where the command has no --resume
    "report/flags.py": {"--model"},  # "`medseg evaluate` without --model"
    # "medseg evaluate -o ... --overwrite"; the whole "medseg infer INPUT -o DIR --model ... --overwrite" it advises
    "report/stale_results.py": {"-o", "--overwrite", "--model", "--series", "--format", "--reference"},
    "training_pairing.py": {"--reference"},  # "infer --reference"
    "cohort/job_command.py": {"-m", "-c"},  # python -m medseg, python -c
    "cohort/settings.py": {"*", "--output"},  # datalad run --output
    # Snakemake's and the SLURM plugin's options, for a workflow's user: any option but one of medseg's commands' (a
    # cohort step's own --time-limit aside, named to the reader of its job's log)
    "cohort/": {"*", "--time-limit"},
}


def test_library_messages_name_no_option_of_medsegs_commands_outside_the_allowed():
    """About 31 library messages named options (``--reference``, ``-c``, ``--batch-size``, ``medseg train
    --resume``) to Python callers too; each is now a setting (:func:`setting`). A string (not a docstring) of the
    library that names an option anew fails here."""
    import ast
    import re

    import medseg
    from medseg.cli.options import OPTION_NAMES

    root = Path(medseg.__file__).parent
    short = {option for option in OPTION_NAMES.values() if not option.startswith("--")} | {"-m", "-o", "-c"}
    medsegs = {*OPTION_NAMES.values(), *short, "--time-limit", "--attempt", "--record", "--job-log", "--memory-mb",
               "--final-memory-mb", "--fail-on", "--json", "--output", "--output-dir"}
    found = []
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where.startswith("cli/"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        allowed = next((names for prefix, names in _OPTIONS_ALLOWED.items() if where.startswith(prefix)), set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])(?![\w-])", node.value):
                    ours = option in medsegs  # "*": any other program's option, not one of medseg's
                    if (option.startswith("--") or option in short) and option not in allowed and (
                            "*" not in allowed or ours):
                        found.append(f"{where}:{node.lineno}: {option}")
    assert found == []


def test_evaluate_of_two_folders_names_how_its_report_draws_more_overlays_not_a_keyword_argument(tmp_path, capsys):
    """`medseg evaluate` of two folders writes a report of at most 100 overlays; a case beyond them said "no overlay:
    ... (max_overlays=... (a keyword argument of medseg's Python functions; medseg evaluate has no option for it))",
    no help to a shell user: `medseg report` of the output folder with --max-overlays draws more."""
    import html

    import nibabel as nib
    import numpy as np

    from medseg.cli.options import COMMAND_OPTIONS, ELSEWHERE

    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    for index in range(101):
        reference = np.zeros((8, 8, 2), np.uint8)
        reference[2:6, 2:6, :] = 1
        prediction = reference.copy()
        prediction[2, 2:2 + index % 4, :] = 0
        nib.save(nib.Nifti1Image(reference, np.eye(4)), ref / f"c{index:03d}.nii.gz")
        nib.save(nib.Nifti1Image(prediction, np.eye(4)), pred / f"c{index:03d}.nii.gz")
    out = tmp_path / "scores"
    code, _, _ = run_cli(["evaluate", str(pred), str(ref), "-o", str(out)], capsys)
    page = html.unescape((out / "report.html").read_text())
    assert code == 0 and page.count("no overlay: only the 100 worst scored or failed cases get one (`medseg report` "
                                    "of the output folder with --max-overlays ... --overwrite)") == 1
    assert "keyword argument" not in page
    with named_as(COMMAND_OPTIONS["evaluate"], "evaluate", ELSEWHERE.get("evaluate")):
        assert setting("ct_window", "bone") == "--ct-window bone"  # evaluate has --ct-window, as report does
