"""What the distributions carry: the wheel, every file of the package (the shipped models and the schemas that
medseg reads at run time); the source distribution, the whole project, so that its tests run from it (it had the
test files, which setuptools takes by their names, but not conftest.py and the helpers they import, nor the
Snakefile, configs and benchmarks they use); and the metadata's licence, which names the CC-BY-SA 4.0 of the shipped
hippocampus weights beside medseg's Apache-2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_readme_links import anchors

REPO = Path(__file__).resolve().parents[1]


def _tracked() -> list[str]:
    """The project's files: those git tracks, and new ones it does not ignore."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout (its tracked files)")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60)
    return [name for name in listed.stdout.decode().split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[list[str], Path, str, str]:
    """The project's tracked files, and the folder with the sdist and wheel built from a copy of them."""
    pytest.importorskip("setuptools", minversion="77")  # pyproject's build requirement
    tracked = _tracked()
    source = tmp_path_factory.mktemp("source")  # a copy: a build writes medseg.egg-info and build/ beside the code
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    code = ("import sys\nfrom setuptools import build_meta\n"  # which rewrites sys.argv
            "out = sys.argv[1]\nsdist = build_meta.build_sdist(out)\nwheel = build_meta.build_wheel(out)\n"
            "print('BUILT', sdist, wheel)")
    build = subprocess.run([sys.executable, "-c", code, str(out)], cwd=source, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stderr
    sdist_name, wheel_name = next(line for line in build.stdout.splitlines() if line.startswith("BUILT ")).split()[1:]
    return tracked, out, sdist_name, wheel_name


def test_the_distributions_carry_the_package_and_the_project(built):
    tracked, out, sdist_name, wheel_name = built
    prefix = sdist_name.removesuffix(".tar.gz") + "/"
    with tarfile.open(out / sdist_name) as sdist:
        in_sdist = {member.name.removeprefix(prefix) for member in sdist.getmembers() if member.isfile()}
    assert sorted(set(tracked) - in_sdist - {".gitignore"}) == []
    with zipfile.ZipFile(out / wheel_name) as wheel:
        in_wheel = set(wheel.namelist())
    assert sorted(name for name in tracked if name.startswith("medseg/") and name not in in_wheel) == []
    assert {"medseg/models/hippocampus/weights.safetensors", "medseg/schemas/model.schema.json",
            "medseg/py.typed"} <= in_wheel  # PEP 561: type checkers read the package's annotations
    assert not [name for name in in_wheel if name.split("/")[0] in ("tests", "configs", "benchmarks", "workflow")]
    from medseg import __version__  # one version: --version prints what the metadata says

    assert wheel_name.startswith(f"medseg-{__version__}-") and sdist_name == f"medseg-{__version__}.tar.gz"


def test_the_metadata_declares_the_licence_of_the_shipped_weights(built):
    """The wheel ships the hippocampus weights, which are CC-BY-SA 4.0 (derived from the Decathlon data): the
    metadata's licence expression, which licence scanners read, names it beside medseg's Apache-2.0, and the NOTICE
    that says which part is under which licence travels in both distributions."""
    _, out, sdist_name, wheel_name = built
    with zipfile.ZipFile(out / wheel_name) as wheel:
        info = wheel_name.split("-py3")[0] + ".dist-info/"
        metadata = wheel.read(info + "METADATA").decode()
        licences = {name.removeprefix(info + "licenses/") for name in wheel.namelist()
                    if name.startswith(info + "licenses/")}
        notice = wheel.read(info + "licenses/NOTICE").decode() if "NOTICE" in licences else ""
    assert "License-Expression: Apache-2.0 AND CC-BY-SA-4.0" in metadata.splitlines()
    assert licences == {"LICENSE", "NOTICE"}
    assert "medseg/models/hippocampus/" in notice and "CC-BY-SA 4.0" in notice
    assert "https://creativecommons.org/licenses/by-sa/4.0/" in notice
    with tarfile.open(out / sdist_name) as sdist:
        pkg_info = sdist.extractfile(sdist_name.removesuffix(".tar.gz") + "/PKG-INFO").read().decode()
    assert "License-Expression: Apache-2.0 AND CC-BY-SA-4.0" in pkg_info.splitlines()


# a link's target: inline (`[text](target)`, `![alt](target)`), a reference definition (`[name]: target`), HTML
LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)|^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)|(?:href|src)=[\"']([^\"']+)",
                         re.MULTILINE)


def links_leaving_the_page(description: str) -> list[str]:
    """The links of a long description that lead neither to a web address nor to a heading of the description itself:
    on a package index's project page a relative link (`docs/infer.md`) leads nowhere."""
    targets = [next(part for part in match if part) for match in LINK_TARGET.findall(description)]
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)
            and not (target.startswith("#") and target[1:] in anchors(description))]


def test_a_link_that_leaves_the_description_is_found():
    text = ("# Page\n\n## Install it\n\n[ok](#install-it) [web](https://monai.io) [mail](mailto:a@b.org) "
            "[doc](docs/infer.md) [gone](#nowhere) ![img](figure.png)\n\n[ref]: CHANGES.md\n"
            "<a href=\"../x.html\">x</a>\n")
    assert links_leaving_the_page(text) == ["docs/infer.md", "#nowhere", "figure.png", "CHANGES.md", "../x.html"]


def test_the_long_description_links_only_the_web_and_itself(built):
    """The long description, which a package index shows as the project's page, was README.md, whose links into
    docs/ (and the README's own files) lead nowhere there: the wheel's METADATA and the source distribution's
    PKG-INFO carry a Markdown page whose every link is a web address or a heading of the page itself."""
    _, out, sdist_name, wheel_name = built
    with zipfile.ZipFile(out / wheel_name) as wheel:
        metadata = wheel.read(wheel_name.split("-py3")[0] + ".dist-info/METADATA").decode()
    with tarfile.open(out / sdist_name) as sdist:
        pkg_info = sdist.extractfile(sdist_name.removesuffix(".tar.gz") + "/PKG-INFO").read().decode()
    for found in (metadata, pkg_info):
        header, _, description = found.partition("\n\n")
        assert "Description-Content-Type: text/markdown" in header.splitlines()
        assert description.startswith("# medseg\n") and "medseg infer" in description
        assert links_leaving_the_page(description) == []
