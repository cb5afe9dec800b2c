"""Every relative link of README.md, the reference pages docs/*.md and benchmarks/README.md leads to a file that
exists and, with an anchor, to a heading of it; the README's contents list names every section and every page."""

import re
from pathlib import Path

import pytest
from documents import ROOT, doc_pages, pages, read, section

DOCUMENTS = [*pages(), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _headings(text: str, levels: str = "#{1,6}") -> list[str]:
    return [line.lstrip("#").strip() for line in _prose(text) if re.match(levels + r" ", line)]


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, inline-code marks and punctuation dropped, spaces as '-'."""
    return re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one also as GitHub numbers it (-1, -2, ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in _headings(text):
        base = anchor(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def broken_links(document: Path) -> list[str]:
    """The relative links of a Markdown file whose file or anchor does not exist, each with the reason."""
    text = document.read_text(encoding="utf-8")
    broken = []
    for paragraph in "\n".join(_prose(text)).split("\n\n"):
        parts = paragraph.split("`")
        if len(parts) % 2:  # backticks in pairs: a code span (which may hold a link's text) is no link itself
            paragraph = "".join(part if index % 2 == 0 else "code" for index, part in enumerate(parts))
        for target in LINK.findall(paragraph):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            path, _, fragment = target.partition("#")
            linked = (document.parent / path) if path else document
            if not linked.exists():
                broken.append(f"{target}: no file {path}")
            elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(document):
    assert broken_links(document) == []


def test_a_broken_anchor_or_file_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Part two\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Outputs of `medseg infer`\n\n## Outputs of `medseg infer`\n\n"
        "[ok](#outputs-of-medseg-infer) [second](#outputs-of-medseg-infer-1) [there](other.md#part-two)\n"
        "[gone](#outputs) [missing](nowhere.md) [no part](other.md#part-three) [web](https://monai.io)\n"
        "`[code](#not-a-link)`\n```\n[fenced](#not-a-link-either)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["#outputs: no heading #outputs in page.md", "nowhere.md: no file nowhere.md",
                                  "other.md#part-three: no heading #part-three in other.md"]


def test_anchors_are_githubs():
    assert anchor("`cohort.tsv` and `summary.json`") == "cohorttsv-and-summaryjson"
    assert anchor("Errors, exit codes and warnings") == "errors-exit-codes-and-warnings"
    assert anchor("`infer_speed.py` — `medseg infer` against the network's own forward time") == (
        "infer_speedpy--medseg-infer-against-the-networks-own-forward-time")


def test_the_contents_list_names_every_section():
    """A section added to the README is added to its contents list too (and one removed, taken out of it), and so
    is each reference page of docs/."""
    text = read("README.md")
    contents = text.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"\]\(#([^)]+)\)", contents)
    sections = [anchor(heading) for heading in _headings(text, "#{2,3}") if heading != "Contents"]
    assert [fragment for fragment in sections if fragment not in listed] == []
    assert [fragment for fragment in listed if fragment not in anchors(text)] == []
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[^)]*)?\)", contents))
    assert sorted(f"docs/{page.name}" for page in doc_pages()) == sorted(linked)


@pytest.mark.parametrize("page", doc_pages(), ids=lambda path: path.name)
def test_each_page_opens_with_a_summary_that_links_back_to_the_readme(page):
    """A reference page starts with its title and one paragraph that says what it holds and links back to the README,
    so a reader who lands on it from a search knows where they are."""
    text = page.read_text(encoding="utf-8")
    title, blank, summary = text.split("\n", 2)
    assert title.startswith("# ") and blank == ""
    first = summary.split("\n\n", 1)[0]
    assert not first.startswith(("#", "```", "|", "    ")), first[:80]
    assert "](../README.md" in first, first[:200]


def test_the_design_section_names_every_module():
    """The README's Design section names each module of medseg/ (`nifti_voxels.py`, `cli/infer.py`,
    `medseg/io/atomic.py`...): modules split or added were left out of its layout before."""
    text = read("README.md")
    design = text[text.index("\n## Design\n"):]
    design = design[:design.index("\n## ", 1)]
    named = set(re.findall(r"[\w/]*?(\w+\.py)`", design))
    modules = sorted(path.relative_to(ROOT / "medseg").as_posix() for path in (ROOT / "medseg").rglob("*.py")
                     if path.name != "__init__.py" and "models" not in path.relative_to(ROOT / "medseg").parts)
    assert [module for module in modules if module.rsplit("/", 1)[-1] not in named] == []


# italics that are no section of the README: a paper's title, and a heading of the QA report's page
NOT_SECTIONS = {"The Medical Segmentation Decathlon", "How to read it"}


def section_references(text: str) -> list[str]:
    """The README's cross-references in italics (`see *Sample sheet*`): each capitalised ``*…*`` span outside code."""
    prose = re.sub(r"`[^`\n]*`", "code", "\n".join(_prose(text))).replace("**", "\0")
    return [span for span in re.findall(r"(?<![\w*])\*([^*\n]+?)\*(?![\w*])", prose) if span[0].isupper()]


def unknown_sections(text: str, others: list[str]) -> list[str]:
    """The italic references of ``text`` that name no heading of it or of ``others`` (in full, or its first words:
    *Metrics* for *Metrics and the empty-mask policy*), no bold paragraph head (``**What is placed how.**``) and no
    paragraph that starts with the name and a colon (``Manual install: …``)."""
    headings = [heading.replace("`", "") for document in (text, *others) for heading in _headings(document)]
    heads = {head for document in (text, *others) for head in (
        *re.findall(r"\*\*([^*\n]+?)[.:]?\*\*", document), *re.findall(r"(?m)^([A-Z][\w ]+):", document))}
    return [name for name in section_references(text) if name not in NOT_SECTIONS and name not in heads
            and not any(heading == name or heading.startswith(name + " ") or heading.startswith(name + ",")
                        for heading in headings)]


@pytest.mark.parametrize("page", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_sections_named_in_italics_exist(page):
    """`minutes_per_case` pointed to "(*SLURM*, run time)", a section the README does not have: the run time is
    told under `profiles/slurm` in *Resources and profiles*. A page's italics may name a section of another page.
    benchmarks/README.md sent its reader to "*The allocator* below" (a paragraph headed "The allocator
    (2026-12-04)") and "*Building that grid a slab …* below" (a paragraph without a head)."""
    others = [path.read_text(encoding="utf-8") for path in DOCUMENTS if path != page]
    assert unknown_sections(page.read_text(encoding="utf-8"), others) == []


@pytest.mark.parametrize("page", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_section_is_named_as_italic_code(page):
    """benchmarks/README.md pointed to "(*`infer_speed.py`* below)", a heading of its own written in italic code,
    which the check of italic references reads as code: a section whose name is code is linked instead."""
    prose = "\n".join(_prose(page.read_text(encoding="utf-8")))
    assert re.findall(r"(?<![\w*])\*`[^`\n]+`\*(?![\w*])", prose) == []


def test_an_unknown_section_in_italics_is_found():
    text = ("# Page\n\n## Metrics and the empty-mask policy\n\n**What is placed how.** Text.\n\nManual install: pip\n\n"
            "See *Metrics*, *What is placed how*, *Manual install*, *Nowhere*, `*Code*`, *the* and\n"
            "```\n*Fenced*\n```\n")
    assert unknown_sections(text, []) == ["Nowhere"]


def test_the_quick_start_is_what_to_type():
    """The Quick start's first screen held a measurement protocol (real-time priority, `chrt -r 1`, medians of 3 with
    busy processes added to a load of about 7) in the middle of what a newcomer types; those figures belong with
    the other thread measurements under Devices and precision, which keeps them. The demo's row said "run the main
    job on an embedded default", not what it does."""
    text = read("README.md")
    quick = section(text, "Quick start")
    for detail in ("chrt", "median", "load of", "spinning", "real-time"):
        assert detail not in quick, detail
    demo = "| install, segment a synthetic phantom with the demo model and print its Dice per label | `make demo` |"
    assert demo in quick
    assert "[Cohorts with\nSnakemake](docs/cohorts.md#cohorts-with-snakemake)" in quick
    devices = section(read("docs/infer.md"), "Devices and precision")
    assert "took 0.21–0.26 s waiting passively and 0.16–0.17 s spinning" in devices


def test_the_200_case_cohort_times_are_paired_alike():
    """*Cohorts with Snakemake* says the 200 hippocampus cases took 45.6 s with 50 per job against 112 s with 10 in
    one run, 38.7 s later; the Figures row put the 112 s beside the later 38.7 s, a 2.9-fold gain where the run that
    compared them measured 2.5."""
    cohorts = section(read("docs/cohorts.md"), "Cohorts with Snakemake")
    figures = section(read("README.md"), "Figures")
    assert "cases took 45.6 s with 50 per job against 112 s with 10 in one run (latest 38.7 s with 50;" in cohorts
    assert "latest run 38.7 s (`cases_per_job=50`; in an earlier run 45.6 s against 112 s with the default 10)" in (
        figures)


def _literal_texts(tree) -> list[str]:
    """Each string literal of a module, implicit concatenations joined, an f-string with its fields as ``{}``."""
    import ast

    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            texts.append("".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append(node.value)
    return texts


# a message's pointer to a section: "README, 'Results folder'", "docs/cohorts.md, 'Results folder'"
SECTION_POINTER = re.compile(r"\b(README|docs/[\w-]+\.md), '([^']+)'")


def section_pointers() -> list[tuple[str, str, str]]:
    """(module, page, section) for each pointer to a section in medseg's messages and help texts."""
    import ast

    found = []
    for module in sorted((ROOT / "medseg").rglob("*.py")):
        for text in _literal_texts(ast.parse(module.read_text(encoding="utf-8"))):
            for page, name in SECTION_POINTER.findall(text):
                found.append((module.relative_to(ROOT).as_posix(), page, name))
    return found


def test_messages_point_to_sections_where_they_are():
    """Three messages sent the user to "the README, 'Results folder'" and "README, 'A DICOM SEG as training
    labels'", sections that moved to docs/cohorts.md and docs/training.md: each pointer names the page that holds
    its section now (the README's own sections as "README")."""
    pointers = section_pointers()
    assert len(pointers) >= 3, pointers
    wrong = []
    for module, page, name in pointers:
        headings = _headings(read("README.md" if page == "README" else page))
        if name not in [heading.replace("`", "") for heading in headings]:
            wrong.append(f"{module}: {page}, '{name}'")
    assert wrong == []


# a pointer to a section of a page anywhere in the code, its comments, the benchmarks and the tests:
# "docs/cohorts.md, *Resources and profiles*", "the README's *Figures*", 'README "Using medseg from Python"'
ANY_POINTER = re.compile(r"\b(README|docs/[\w-]+\.md)(?:\.md)?(?:'s)?,? "
                         r"(?:\*([^*'\"()]{1,80})\*|'([^'()]{1,80})'|\"([^\"()]{1,80})\")")
POINTING_FILES = [*sorted((ROOT / "medseg").rglob("*.py")), *sorted((ROOT / "benchmarks").rglob("*.py")),
                  ROOT / "benchmarks" / "README.md", ROOT / "Snakefile", *sorted((ROOT / "workflow").rglob("*.smk")),
                  *sorted(path for path in (ROOT / "tests").glob("*.py") if path.name != "test_readme_links.py")]


def names_a_section(page: str, name: str) -> bool:
    """Whether ``name`` is a heading of ``page`` (in full or its first words) or a bold paragraph head of it."""
    headings = [heading.replace("`", "") for heading in _headings(page)]
    heads = set(re.findall(r"\*\*([^*\n]+?)[.:]?\*\*", page))
    return name in heads or any(heading == name or heading.startswith((name + " ", name + ","))
                                for heading in headings)


def pointers(text: str) -> list[tuple[str, str]]:
    """(page, section) for each pointer of a file's text, its lines joined, comment marks and the quotes between
    implicitly joined string literals dropped."""
    text = re.sub(r"\"\s+f?\"", "", re.sub(r"\n\s*(?:#+\s*)?", " ", text))
    return [(page, next(part for part in names if part)) for page, *names in ANY_POINTER.findall(text)]


def missing_sections(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(page, name) for page, name in found
            if not names_a_section(read("README.md" if page == "README" else page), name)]


def test_pointers_in_code_comments_and_tests_name_sections_where_they_are():
    """The move to docs/ left pointers behind in comments, docstrings and benchmarks: "the README's *Against other
    libraries*" (now docs/metrics.md), "README, *Devices and precision*" (docs/infer.md). Each names the page that
    holds its section."""
    found = {path.relative_to(ROOT).as_posix(): pointers(path.read_text(encoding="utf-8")) for path in POINTING_FILES}
    assert sum(len(each) for each in found.values()) >= 20
    assert {path: missing_sections(each) for path, each in found.items() if missing_sections(each)} == {}


def test_a_pointer_to_a_section_elsewhere_is_found():
    text = ('"""See the README\'s *Figures*, README, *Nowhere*, docs/metrics.md, *Metrics\n'
            '    JSON*; docs/metrics.md, "Against other " "libraries"; README.md, Figures."""\n')
    assert pointers(text) == [("README", "Figures"), ("README", "Nowhere"), ("docs/metrics.md", "Metrics JSON"),
                              ("docs/metrics.md", "Against other libraries")]
    assert missing_sections(pointers(text)) == [("README", "Nowhere")]


def italics_elsewhere_without_a_page(page: Path) -> list[str]:
    """A reference page's italic references to a section that is not on it and whose sentence names no page (a
    link, or a `.md` file) within 150 characters: the reader who landed on the page cannot find it."""
    text = page.read_text(encoding="utf-8")
    prose = re.sub(r"\s+", " ", "\n".join(_prose(text)))
    found = []
    for name in unknown_sections(text, []):
        for match in re.finditer(re.escape(f"*{name}*"), prose):
            if ".md" not in prose[max(0, match.start() - 150):match.end() + 150]:
                found.append(name)
    return found


@pytest.mark.parametrize("page", doc_pages(), ids=lambda path: path.name)
def test_italics_to_another_page_name_it(page):
    """docs/cohorts.md sent the reader to *Devices and precision* and docs/metrics.md to *What is placed how*,
    sections of docs/infer.md and docs/dicom.md: such a reference links the page that holds it."""
    assert italics_elsewhere_without_a_page(page) == []


def _fenced_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced:
            lines.append(line)
    return lines


def test_the_package_description_shows_what_the_readme_shows():
    """DESCRIPTION.md, the page a package index shows (README.md's links into docs/ lead nowhere there), names every
    reference page, and each command and output line of its examples is one of the README's, which the tour's tests
    keep true: the short page cannot drift from the long one."""
    description = read("DESCRIPTION.md")
    readme_lines = set(read("README.md").splitlines())
    shown = [line for line in _fenced_lines(description) if line != "…"]
    assert len(shown) >= 10
    assert [line for line in shown if line not in readme_lines] == []
    assert [page.name for page in doc_pages() if f"`docs/{page.name}`" not in description] == []
    assert unknown_sections(description, []) == []


def test_the_readme_names_the_make_targets_that_install_nothing():
    """*Installation and make targets* said "Each target creates `.venv`, installs medseg …", but `make clean` and
    `make browser` install nothing (the Makefile's targets without the install stamp among their prerequisites):
    the sentence names them as the exceptions."""
    targets = re.findall(r"(?m)^([a-z][\w-]*):(.*)$", read("Makefile"))
    installing_nothing = sorted(name for name, prerequisites in targets if "$(STAMP)" not in prerequisites)
    assert installing_nothing == ["browser", "clean"]
    opening = section(read("README.md"), "Installation and make targets").split("\n\n")[1]
    before = opening[:opening.index("creates `.venv`")]
    assert [name for name in installing_nothing if f"`make {name}`" not in before] == []
    # the Makefile's own opening comment said "Every target installs what it needs into .venv first" too
    header = read("Makefile").split("\n\n")[0]
    assert "installs what it needs" in header
    assert [name for name in installing_nothing if name not in header] == []
