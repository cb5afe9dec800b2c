"""The package's shape as the style guide asks for it: every module states its public names (``__all__``) and
they exist; the library (everything outside ``medseg.cli`` and ``__main__``) neither prints nor exits."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import medseg

PACKAGE_DIR = Path(medseg.__file__).parent
MODULES = sorted(info.name for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="medseg."))
LIBRARY = [name for name in MODULES if not name.startswith("medseg.cli") and name != "medseg.__main__"]


def _source(module_name: str) -> Path:
    relative = Path(*module_name.split(".")[1:])
    folder = PACKAGE_DIR / relative
    return folder / "__init__.py" if folder.is_dir() else PACKAGE_DIR / relative.with_suffix(".py")


def test_the_walk_finds_the_library_and_the_cli():
    assert {"medseg.segment", "medseg.io.nifti", "medseg.cohort.run", "medseg.cli.infer"} <= set(MODULES)
    assert len(LIBRARY) > 40


@pytest.mark.parametrize("module_name", [name for name in MODULES if name != "medseg.__main__"])
def test_every_module_lists_its_public_names_and_they_exist(module_name):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert isinstance(names, list) and names, f"{module_name} has no __all__"
    assert len(set(names)) == len(names), f"{module_name}.__all__ repeats a name"
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not have: {missing}"


def _calls(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id in {"SystemExit", "KeyboardInterrupt"}:
                found.append(f"raise {raised.id} at line {node.lineno}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"print", "exit", "quit"}:
            found.append(f"{func.id}() at line {node.lineno}")
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner, name = func.value.id, func.attr
            if (owner, name) in {("sys", "exit"), ("os", "_exit"), ("click", "echo"), ("click", "secho")}:
                found.append(f"{owner}.{name}() at line {node.lineno}")
        if isinstance(func, ast.Attribute) and func.attr == "write" and isinstance(func.value, ast.Attribute) \
                and isinstance(func.value.value, ast.Name) and func.value.value.id == "sys" \
                and func.value.attr in {"stdout", "stderr"}:
            found.append(f"sys.{func.value.attr}.write() at line {node.lineno}")
    return sorted(found, key=lambda text: int(text.rsplit(' ', 1)[1]))  # in the order of the source


@pytest.mark.parametrize("module_name", LIBRARY)
def test_the_library_neither_prints_nor_exits(module_name):
    tree = ast.parse(_source(module_name).read_text(encoding="utf-8"))
    assert _calls(tree) == [], f"{module_name} prints or exits"


def test_the_check_sees_prints_and_exits():
    tree = ast.parse("import sys, os, click\nprint(1)\nsys.exit(2)\nos._exit(3)\nclick.echo('x')\nlog.info('y')\n"
                     "raise SystemExit(1)\nsys.stderr.write('z')\nraise ValueError('w')\n")
    assert _calls(tree) == ["print() at line 2", "sys.exit() at line 3", "os._exit() at line 4",
                            "click.echo() at line 5", "raise SystemExit at line 7", "sys.stderr.write() at line 8"]


def _type_slips():
    """Public calls given a str where a list belongs, or None (a list, a number) where a path belongs; each raised
    Python's own TypeError, ValueError or AttributeError."""
    from medseg.io.images import read_grid, read_image
    from medseg.package import load_package
    from medseg.report.build import build_report
    from medseg.scoring import evaluate_files, score_prediction
    from medseg.segment import segment_case
    from medseg.train import train
    from medseg.train_config import default_config, read_config
    from medseg.training_cases import load_cases, pair_cases

    config = default_config([0, 1])
    return [
        (lambda: default_config("abc"), "a str given as the label values; give a list of whole numbers"),
        (lambda: default_config("0123"), "a str given as the label values"),  # was labels 0..3, one per character
        (lambda: default_config(None), "a NoneType given as the label values"),
        (lambda: default_config([0, 1.5]), "label value 1.5 (float); give whole numbers"),
        (lambda: train(config, "folder", "out"), "a str given as the cases; give a list of TrainCase"),
        (lambda: train(config, ["a.nii.gz"], "out"), "a list holding a str given as the cases"),
        (lambda: train("config.yaml", [], "out"), "a str given as the config; give a dict"),
        (lambda: load_cases("folder", config), "a str given as the cases"),
        (lambda: read_image(None), "a NoneType given as the image; give a path (a str or a pathlib.Path)"),
        (lambda: read_image(3), "an int given as the image"),
        (lambda: read_grid(None), "a NoneType given as the image"),
        (lambda: read_config(None), "a NoneType given as the training config"),
        (lambda: pair_cases(None, "labels"), "a NoneType given as the images folder"),
        (lambda: segment_case(["a.nii.gz"], "phantom"), "a list given as the input; give a path (a str or a "
                                                         "pathlib.Path) (one call takes one path; call it for each)"),
        (lambda: segment_case("a.nii.gz", "phantom", out_dir=3), "an int given as the output folder"),
        (lambda: score_prediction(None, "b.nii.gz", case_id="a"), "a NoneType given as the prediction"),
        # the article as the type's name is read: "a ndarray", "an uint8" were not
        (lambda: score_prediction(np.zeros(3), "b.nii.gz", case_id="a"), "an ndarray given as the prediction; give a "
                                                                           "path"),
        (lambda: read_image(np.uint8(3)), "a uint8 given as the image"),
        (lambda: evaluate_files("a.nii.gz", None), "a NoneType given as the reference"),
        (lambda: build_report(None, "report.html"), "a NoneType given as the results folder"),
        (lambda: load_package(None), "a NoneType given as the model package"),
    ]


@pytest.mark.parametrize("index", range(len(_type_slips())))
def test_a_type_slip_in_a_public_call_is_an_input_error_that_says_what_was_given(index, tmp_path, monkeypatch):
    from medseg.errors import MedsegError

    monkeypatch.chdir(tmp_path)
    call, expected = _type_slips()[index]
    with pytest.raises(MedsegError) as caught:
        call()
    assert isinstance(caught.value, ValueError)  # InputError, or the package loader's ModelPackageError
    assert expected in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing written (the training run's folder included)



def test_the_four_path_arguments_take_text_or_any_pathlike_and_refuse_the_rest_in_their_own_words():
    """The loader, the segmenter, segment_volume's model and every path argument test "a path" with one function,
    is_path: text or any os.PathLike is taken (not only a pathlib.Path), bytes are refused as before."""
    import numpy as np

    from medseg.errors import InputError, ModelPackageError
    from medseg.inference import Segmenter
    from medseg.io.files import is_path, path_argument
    from medseg.package import load_package
    from medseg.segment import _segmenter, segment_volume
    from medseg.volume import Volume

    class Where:  # an os.PathLike that is not a pathlib.Path (as os.DirEntry)
        def __init__(self, path):
            self.path = str(path)

        def __fspath__(self):
            return self.path

    phantom = Path(medseg.__file__).parent / "models" / "phantom"
    assert [is_path(v) for v in ("a", Path("a"), Where("a"), b"a", None, ["a"], 3)] == [True] * 3 + [False] * 4
    assert path_argument(Where("a.nii.gz"), "the input") == Path("a.nii.gz")
    with pytest.raises(InputError) as raised:
        path_argument(b"a.nii.gz", "the input")
    assert str(raised.value) == "a bytes given as the input; give a path (a str or a pathlib.Path)"
    assert load_package(Where(phantom)).name == "phantom"
    with pytest.raises(ModelPackageError) as raised:
        load_package(b"phantom")
    assert str(raised.value) == "a bytes given as the model package; give a shipped model's name or a package folder"
    segmenter = Segmenter(Where(phantom), device="cpu")
    assert segmenter.package.name == "phantom"
    with pytest.raises(ModelPackageError) as raised:
        Segmenter(b"phantom", device="cpu")
    assert str(raised.value) == ("a bytes given as the model package; give a shipped model's name, a package folder "
                                 "or a loaded medseg.package.ModelPackage")
    assert _segmenter(segmenter) is segmenter and _segmenter(Where(phantom)).package.name == "phantom"
    with pytest.raises(InputError) as raised:
        segment_volume(Volume(np.ones((8, 8, 4), np.float32), np.eye(4)), b"phantom")
    assert str(raised.value) == ("a bytes given as the segmenter; give a medseg.inference.Segmenter, or a shipped "
                                 "model's name or a package folder")


def test_the_image_modules_are_reached_from_medseg_io_without_importing_nibabel_first():
    """``medseg.io`` imports its image readers on first use (planning a cohort needs no nibabel); the submodules their
    import brought, as the README names them (``medseg.io.images.read_image``), were then no attribute of it."""
    import subprocess
    import sys

    code = ("import sys, medseg.io\n"
            "print('nibabel' in sys.modules)\n"
            "print(medseg.io.images.read_image.__module__, medseg.io.nifti.write_labels.__module__)\n"
            "print(hasattr(medseg.io, 'no_such_module'))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE_DIR.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n") == ["False", "medseg.io.images medseg.io.nifti_write", "False", ""]


_WARNED_READ = ("import logging, os, sys, tempfile\n"
                "import nibabel as nib, numpy as np\n"
                "folder = tempfile.mkdtemp()\n"
                "nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), os.path.join(folder, 'a.nii'))\n"
                "os.rename(os.path.join(folder, 'a.nii'), os.path.join(folder, 'a.nii.gz'))  # a warning: not gzip\n"
                "{setup}\n"
                "from medseg.io.images import read_image\n"
                "print(read_image(os.path.join(folder, 'a.nii.gz')).array.shape)\n")


def _run_warned_read(setup: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _WARNED_READ.format(setup=setup)], capture_output=True, text=True,
                          timeout=120, cwd=PACKAGE_DIR.parent)


def test_the_library_writes_no_warning_to_stderr_until_the_program_configures_logging():
    """A notebook or pipeline that configures no logging heard each of medseg's warnings on stderr (Python's
    last-resort handler, as no medseg logger had a handler); the README says nothing prints."""
    quiet = _run_warned_read("")
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("(4, 4, 4)\n", "")
    told = _run_warned_read("logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')")
    assert told.returncode == 0, told.stderr
    assert told.stderr.startswith("WARNING medseg.io.nifti: ") and "not gzip-compressed despite its .gz name" in \
        told.stderr and told.stderr.count("\n") == 1


def test_cohort_planning_shows_medseg_warnings_as_before_and_once():
    """The workflow configures no logging: its planning shows medseg's warnings itself (the bare message on stderr,
    as before the library's loggers were silenced), once however often it asks, and not where a program running it
    has configured logging (whose handler takes them)."""
    setup = ("from medseg.shown_warnings import show_warnings\n"
             "show_warnings(labelled=False); show_warnings(labelled=False)  # as the Snakefile calls it")
    planning = _run_warned_read(setup)
    assert planning.returncode == 0, planning.stderr
    assert planning.stderr.endswith("a.nii.gz: not gzip-compressed despite its .gz name: read as an uncompressed "
                                    "NIfTI file\n") and planning.stderr.count("\n") == 1
    hosted = _run_warned_read("logging.basicConfig(format='host: %(message)s')\n" + setup)
    assert hosted.returncode == 0, hosted.stderr
    assert hosted.stderr.startswith("host: ") and hosted.stderr.count("\n") == 1


README_ENTRY_POINTS = [  # the functions docs/python-api.md's "Using medseg from Python" calls or names
    ("medseg.inference", "Segmenter"), ("medseg.segment", "segment_case"), ("medseg.segment", "segment_volume"),
    ("medseg.metrics", "evaluate_volumes"), ("medseg.scoring", "score_prediction"),
    ("medseg.scoring", "evaluate_files"),
    ("medseg.report.build", "build_report"), ("medseg.synthetic", "write_phantom"), ("medseg.io.images", "read_image"),
    ("medseg.io.channels", "read_channels"), ("medseg.package", "load_package"), ("medseg.resources", "set_threads"),
    ("medseg.train", "train"), ("medseg.train_config", "read_config"), ("medseg.train_config", "default_config"),
    ("medseg.training_cases", "load_cases"), ("medseg.training_cases", "pair_cases"),
]


@pytest.mark.parametrize("module_name, name", README_ENTRY_POINTS)
def test_the_readme_entry_points_annotate_every_parameter_and_say_what_they_raise(module_name, name):
    """A notebook's user reads the signature and the docstring: the segmenter and the package were unannotated, and
    read_image, load_package, score_prediction, evaluate_files, build_report, read_config, load_cases and
    write_phantom said nothing of the errors they raise."""
    import inspect

    from medseg import errors

    function = getattr(importlib.import_module(module_name), name)
    signature = inspect.signature(function.__init__ if inspect.isclass(function) else function)
    unannotated = [parameter.name for parameter in signature.parameters.values()
                   if parameter.name != "self" and parameter.annotation is inspect.Parameter.empty]
    assert unannotated == [], f"{module_name}.{name}"
    told = [error for error in errors.__all__ if error.endswith("Error") and error in (inspect.getdoc(function) or "")]
    assert told, f"{module_name}.{name}: its docstring names no error of medseg.errors"


def test_the_entry_points_are_names_of_the_package_imported_when_first_used():
    """``import medseg; medseg.segment_volume(...)``, what a notebook's user tries first, was an AttributeError: the
    entry points lay in seven modules, and ``medseg.__all__`` named only ``__version__``. They are names of the package
    now, and ``import medseg`` still imports none of the heavy libraries."""
    import subprocess
    import sys

    code = ("import sys, medseg; print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'torch', 'monai', "
            "'nibabel', 'scipy'})); medseg.Volume; print('torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert shown[:2] == ["[]", "False"]  # a Volume needs numpy, not torch
    entry_points = [name for name in medseg.__all__ if name != "__version__"]
    assert {"Segmenter", "Volume", "segment_volume", "segment_case", "evaluate_volumes", "score_prediction",
            "read_image", "build_report", "MedsegError"} <= set(entry_points)
    for name in entry_points:
        value = getattr(medseg, name)
        assert getattr(importlib.import_module(value.__module__), name) is value
        assert value.__module__ != "medseg" and name in dir(medseg)
    assert medseg.segment_volume is importlib.import_module("medseg.segment").segment_volume
    assert issubclass(medseg.errors.InputError, medseg.MedsegError)
    with pytest.raises(AttributeError, match="module 'medseg' has no attribute 'segment_volumes'"):
        medseg.segment_volumes  # noqa: B018
    assert sorted(entry_points) == sorted(medseg._ENTRY_POINTS)  # the list and the lazy lookup agree


def test_dir_of_the_package_lists_its_public_names_only():
    """``dir(medseg)``, what a notebook's completion offers, listed ``TYPE_CHECKING``, ``importlib``, ``logging``,
    ``annotations`` and ``_ENTRY_POINTS``, the machinery of the lazy lookup. It lists ``__all__`` and the submodules
    imported so far (``medseg.errors``, which is then a name of the package), nothing else."""
    import subprocess
    import sys

    code = "import medseg; print(*dir(medseg)); import medseg.errors; print(*dir(medseg))"
    before, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True).stdout.splitlines()
    assert before.split() == sorted(medseg.__all__)
    assert after.split() == sorted([*medseg.__all__, "errors"])
    assert not {"TYPE_CHECKING", "importlib", "logging", "annotations", "_ENTRY_POINTS"} & set(dir(medseg))


def test_a_type_checker_sees_the_entry_points_and_no_catch_all():
    """mypy and pyright read ``medseg/__init__.py`` with ``TYPE_CHECKING`` true. A module-level ``__getattr__`` they can
    see makes every name of the package pass as ``Any``: ``medseg.segment_volumes``, a typo, passed mypy. They see the
    entry points, as their modules define them, and no ``__getattr__``."""
    path = Path(medseg.__file__)

    class AsChecked(ast.NodeTransformer):  # a name TYPE_CHECKING is true to them, however it is bound
        def visit_Name(self, node):
            return ast.copy_location(ast.Constant(True), node) if node.id == "TYPE_CHECKING" else node

    tree = AsChecked().visit(ast.parse(path.read_text()))
    tree.body = [node for node in tree.body if not isinstance(node, ast.Assign)
                 or not any(isinstance(target, ast.Constant) for target in node.targets)]  # TYPE_CHECKING = False
    seen: dict = {"__name__": "medseg_as_checked", "__file__": str(path)}
    exec(compile(ast.fix_missing_locations(tree), str(path), "exec"), seen)  # noqa: S102 - the package's own source
    assert "__getattr__" not in seen and "__dir__" not in seen
    for name in medseg.__all__:
        assert seen[name] == getattr(medseg, name), name
    # and at run time the names are looked up lazily, as before, and `import medseg` imports no typing (6 ms of it)
    assert callable(medseg.__getattr__) and "segment_volume" in dir(medseg)
    import subprocess
    import sys

    code = "import sys; before = 'typing' in sys.modules; import medseg; print(before, 'typing' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() \
        == ["False", "False"]
