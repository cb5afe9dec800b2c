"""The package's shape as the style guide asks for it: every module states its public names (``__all__``) and
they exist; the library (everything outside ``medseg.cli`` and ``__main__``) neither prints nor exits."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

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
