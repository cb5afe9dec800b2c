"""The case table's sorting (medseg.report.html_sort) in headless Chromium: the page's own script runs under its
Content-Security-Policy, and a click on a column's head orders the rows worst first by that column (skipped when
Chromium is not on PATH)."""

from __future__ import annotations

import json
import re
import time

import pytest
from chromium_page import CHROMIUM, DevTools, chromium, fresh_page, probe_page
from report_cases import read_tsv

from medseg.report.html_sort import SORT_SCRIPT

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not on PATH (Debian: apt-get install chromium)")

# the case ids of the table's rows, as the reader sees them, after each click on the heads named (by their text)
CLICKS = """(()=>{const t=document.querySelector('table.sortable'),heads=[...t.tHead.rows[0].cells];
const ids=()=>[...t.tBodies[0].rows].map(r=>r.cells[1].textContent);
return JSON.stringify(%s.map(name=>{heads.find(h=>h.textContent.replace(/ .$/,'')===name).querySelector('button')
.click();return ids();}));})()"""


def _clicks(html, tmp_path, *heads: str) -> list[list[str]]:
    return json.loads(probe_page(html, tmp_path, 1400, CLICKS % json.dumps(list(heads))))


def _case_id(row: dict) -> str:
    return row["case_id"][1:] if row["case_id"].startswith("'") else row["case_id"]


def test_the_sorting_script_runs_under_the_pages_own_policy(built):
    """The page allows its one script by its SHA-256: in the page as written (policy in force), every sortable head
    became a button, and Chromium logged no breach of the policy (a wrong hash would leave the table unsortable,
    with such a line)."""
    page = built.html.read_text(encoding="utf-8")
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page).group(1)
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/]+=*'", policy) and "unsafe-inline' ;" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert page.count("<script") == 1
    heads = len(re.findall(r'<th (?:class="vd" )?data-sort="', page))
    assert heads == 4 + 2 * 2 + 1  # #, case, status, flags; Dice and volume of each label; volume difference
    logged = chromium("--window-size=1400,2000", "--virtual-time-budget=3000", "--enable-logging=stderr", "--v=0",
                      "--dump-dom", built.html.as_uri())
    assert logged.returncode == 0, logged.stderr[-2000:]
    assert len(re.findall(r'<th (?:class="vd" )?data-sort="[a-z]+" data-key="[a-z0-9-]+"(?: data-name="rank")?'
                          r'(?: data-first="desc")?(?: aria-sort="ascending")?><button type="button">',
                          logged.stdout)) == heads
    assert "Content Security Policy" not in logged.stderr, logged.stderr[-2000:]


def test_a_click_on_a_head_sorts_the_case_table_worst_first_by_that_column(built, tmp_path):
    """A QA lead wants the cases worst first by the Dice of any label, by their flags, by volume difference: the table
    was in one fixed order. A click on a Dice head puts the failed cases first, then the lowest Dice (cases without
    one last); a second click the other way; flags sort most first; # restores the page's order."""
    rows = read_tsv(built.table)  # worst first, as the page
    ranked = [_case_id(row) for row in rows]
    by_box, flags, back = _clicks(built.html, tmp_path, "Dice box", "flags", "#")
    again = _clicks(built.html, tmp_path, "Dice box", "Dice box")[1]
    failed = [_case_id(row) for row in rows if row["status"] == "failed"]
    scored = sorted((row for row in rows if row["box_dice"]), key=lambda row: (float(row["box_dice"]),
                                                                               ranked.index(_case_id(row))))
    rest = [_case_id(row) for row in rows if row["status"] != "failed" and not row["box_dice"]]
    assert rest == ["noref_big"] and failed == ["crashed"]
    assert by_box == failed + [_case_id(row) for row in scored] + rest
    assert by_box[1] == "bad"  # its box missed: Dice 0
    scored.sort(key=lambda row: (-float(row["box_dice"]), ranked.index(_case_id(row))))
    assert again == [_case_id(row) for row in scored] + failed + rest
    assert flags == [_case_id(row) for row in sorted(rows, key=lambda row: -int(row["n_flags"]))]
    assert back == ranked


def test_the_volume_difference_column_sorts_the_largest_first(built, tmp_path):
    """The table's last column names each case's label farthest from its reference volume, in percent; sorted, the
    largest difference comes first whatever its sign, cases without a reference last."""
    rows = read_tsv(built.table)
    ranked = [_case_id(row) for row in rows]

    def largest(row: dict) -> float | None:
        sizes = [abs(float(row[f"{name}_pred_volume_ml"]) - float(row[f"{name}_ref_volume_ml"]))
                 / float(row[f"{name}_ref_volume_ml"]) for name in ("ball", "box")
                 if row[f"{name}_ref_volume_ml"] and row[f"{name}_pred_volume_ml"]]
        return max(sizes) if sizes else None

    known = sorted((row for row in rows if largest(row) is not None),
                   key=lambda row: (-largest(row), ranked.index(_case_id(row))))
    (order,) = _clicks(built.html, tmp_path, "largest volume difference")
    assert order == [_case_id(row) for row in known] + [_case_id(row) for row in rows if largest(row) is None]
    assert order[0] == "bad"


def test_the_sorting_is_offered_only_where_it_runs_and_the_table_says_how_it_is_sorted(built, tmp_path):
    """Without script (a viewer that runs none, a hardened mail client) the page said "Click a column's head to sort
    by it" over heads that were no buttons; and no head said how the table was sorted until a click (a screen
    reader's user heard no order). The words show once the script ran, and # is marked as the order as written."""
    page = built.html.read_text(encoding="utf-8")
    heads = re.search(r"<thead><tr>(.*?)</tr></thead>", page.split("Cases, worst first")[1]).group(1)
    assert heads.startswith('<th data-sort="num" data-key="rank" data-name="rank" aria-sort="ascending">#</th>')
    assert heads.count("aria-sort") == 1
    help_text = re.compile(r'<span class="sort-help"( hidden(?:="")?)?>Click a column')
    assert help_text.search(page).group(1) == " hidden"  # as written: what a viewer without script shows
    ran = chromium("--window-size=1400,2000", "--virtual-time-budget=3000", "--dump-dom", built.html.as_uri())
    assert ran.returncode == 0 and help_text.search(ran.stdout).group(1) is None  # the policy in force
    # a click on another head moves the mark there; # once more restores the order as written
    marks = probe_page(built.html, tmp_path, 1400, "(()=>{const h=[...document.querySelector('table.sortable')"
                       ".tHead.rows[0].cells];const marks=()=>h.map(x=>x.getAttribute('aria-sort')||'').join('|');"
                       "h[4].querySelector('button').click();const a=marks();h[0].querySelector('button').click();"
                       "return a+'/'+marks();})()")
    assert marks == "||||ascending||||/ascending||||||||"


# the page's state as a reader sees it, in a page driven over DevTools: the rows' case ids, the heads' aria-sort
# (by head text), the heading and the caption of the case table, and the URL's fragment
STATE = """(()=>{const t=document.querySelector('table.sortable'),heads=[...t.tHead.rows[0].cells];
return {ids:[...t.tBodies[0].rows].map(r=>r.cells[1].textContent),
sorted:heads.filter(h=>h.hasAttribute('aria-sort')).map(h=>h.textContent+' '+h.getAttribute('aria-sort')),
heading:document.querySelector('#worst h2').textContent,caption:t.caption.textContent,fragment:location.hash,
contents:document.querySelector('nav a[href="#worst"]').textContent};})()"""


def _click(tools: DevTools, head: str) -> dict:
    """Clicks the case table's head named ``head`` (its text) and gives the page's :data:`STATE` after it."""
    tools.evaluate(f"[...document.querySelector('table.sortable').tHead.rows[0].cells].find(h=>h.textContent==="
                   f"{json.dumps(head)}).querySelector('button').click()")
    return tools.evaluate(STATE)


def test_the_heading_and_caption_say_the_order_the_table_is_in(built):
    """After a click sorted the table by Dice, its heading still said "Cases, worst first" (and its caption, which a
    screen reader lists the table by, "Every case, worst first"): false. They name the column and the direction,
    and the page's own order brings back the worst-first words, which a page without script shows as written."""
    caption = ": status, flags, Dice and predicted volume"
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        written = tools.evaluate(STATE)
        up, down, back = (_click(tools, head) for head in ("Dice box", "Dice box", "#"))
        backwards = _click(tools, "#")
    assert (written["heading"], written["caption"]) == ("Cases, worst first", "Every case, worst first" + caption)
    assert (up["heading"], up["caption"]) == ("Cases, by Dice box, ascending", "Every case, by Dice box, ascending"
                                              + caption)
    assert (down["heading"], down["caption"]) == ("Cases, by Dice box, descending",
                                                  "Every case, by Dice box, descending" + caption)
    assert (back["heading"], back["caption"]) == (written["heading"], written["caption"])
    assert backwards["heading"] == "Cases, by rank, descending"
    # the table of contents' link to the table named it "cases, worst first" after any click too
    assert [state["contents"] for state in (written, up, down, back, backwards)] == [
        "cases, worst first", "cases, by Dice box, ascending", "cases, by Dice box, descending", "cases, worst first",
        "cases, by rank, descending"]


def test_text_is_compared_by_one_collator_made_once(built):
    """Sorting 400 rows by a text column took ~137 ms in Chromium: ``localeCompare`` with options builds a collator
    per comparison. The script makes one numeric-aware ``Intl.Collator`` before any click, and still sorts case_9
    before case_10."""
    assert "localeCompare" not in SORT_SCRIPT
    assert SORT_SCRIPT.count("new Intl.Collator(") == 1
    assert SORT_SCRIPT.index("new Intl.Collator(") < SORT_SCRIPT.index("addEventListener")
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        tools.evaluate("(()=>{const rows=document.querySelector('table.sortable').tBodies[0].rows;"
                       "['case_10','case_9','Case_2','case_1'].forEach((id,i)=>{rows[i].cells[1].textContent=id;});})()")
        ids = _click(tools, "case")["ids"]
    named = [i for i in ids if i.lower().startswith("case_")]
    assert named == ["case_1", "Case_2", "case_9", "case_10"]


def test_the_order_is_kept_in_the_fragment_and_a_reload_or_a_shared_link_restores_it(built):
    """A reload, or the link sent to a colleague, showed the worst-first order again, whatever the reader had sorted
    by. A click writes the order into the URL's fragment (``#sort=dice-2-desc``), which the page reads as it loads."""
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        _click(tools, "Dice box")
        sorted_down = _click(tools, "Dice box")
        tools.reload()
        reloaded = tools.evaluate(STATE)
        flags = _click(tools, "flags")
        tools.open(built.html.as_uri() + "#sort=flags-desc")  # the link as shared, in a fresh page
        shared = tools.evaluate(STATE)
        tools.open(built.html.as_uri() + "#sort=volume-difference-asc")
        smallest = tools.evaluate(STATE)
        again = _click(tools, "largest volume difference")
    assert sorted_down["fragment"] == "#sort=dice-2-desc" and flags["fragment"] == "#sort=flags-desc"
    assert reloaded == sorted_down and reloaded["sorted"] == ["Dice box descending"]
    assert shared == flags and shared["heading"] == "Cases, by flags, descending"
    assert smallest["sorted"] == ["largest volume difference ascending"]
    assert again["sorted"] == ["largest volume difference descending"]  # the order in force, the other way
    assert again["fragment"] == "#sort=volume-difference-desc"


def _traversed(tools: DevTools, step: int, fragment: str) -> dict:
    """Goes ``step`` entries through the tab's history (Back: -1) and gives the page's :data:`STATE` once the
    address has the ``fragment`` and the page's tasks queued with it (its ``hashchange``) have run."""
    tools.evaluate(f"history.go({step})")
    for _ in range(100):
        if tools.evaluate("location.hash") == fragment:
            return tools.evaluate("new Promise(done=>setTimeout(()=>done(" + STATE + "),50))")
        time.sleep(0.05)
    raise AssertionError(f"the address never reached {fragment}")


def test_back_and_forward_sort_the_table_as_the_address_says(built):
    """The page read the order from its address only as it loaded: sorted by Dice box, a case's link followed (its
    fragment added to the history), then sorted by status, Back left the address at ``#sort=dice-2-asc`` and the
    table, its heading and ``aria-sort`` at status: a reload, or the address copied, showed another order than the one
    on screen. A change of the address to an order (Back, Forward, an edit) sorts the table by it, Back to the address
    as opened without a fragment gives the page's own order, and a case's link leaves the table as it is."""
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        _click(tools, "flags")  # the page's entry: #sort=flags-desc
        tools.evaluate("location.hash='#case-crashed'")  # as a case's link: a new entry
        linked = tools.evaluate("new Promise(done=>setTimeout(()=>done(" + STATE + "),50))")
        _click(tools, "Dice box")  # the link's entry replaced: #sort=dice-2-asc
        tools.evaluate("location.hash='#case-crashed'")
        _click(tools, "status")  # #sort=status-asc
        back = _traversed(tools, -1, "#sort=dice-2-asc")
        forward = _traversed(tools, 1, "#sort=status-asc")
        first = _traversed(tools, -2, "#sort=flags-desc")
        tools.reload()
        reloaded = tools.evaluate(STATE)
        tools.open(built.html.as_uri())
        written = tools.evaluate(STATE)
        tools.evaluate("location.hash='#case-crashed'")
        _click(tools, "flags")
        opened = _traversed(tools, -1, "")
    assert linked["sorted"] == ["flags descending"] and linked["fragment"] == "#case-crashed"
    assert back["sorted"] == ["Dice box ascending"] and back["heading"] == "Cases, by Dice box, ascending"
    assert forward["sorted"] == ["status ascending"] and forward["caption"].startswith("Every case, by status, asc")
    assert first["sorted"] == ["flags descending"] and first == reloaded  # on screen what the address gives again
    assert opened == written  # worst first, # marked, as written


HOSTILE_FRAGMENTS = [
    "#sort=<img src=x onerror=document.body.setAttribute('data-ran',1)>-desc",
    "#sort=dice-2-desc\"><svg onload=document.body.setAttribute('data-ran',2)>",
    "#sort=x'],img[src=x]-asc", "#sort=__proto__-asc", "#sort=constructor-desc", "#sort=toString-asc",
    "#sort=dice-2-sideways", "#sort=dice-2", "#sort=-asc", "#sort=dice-3-asc", "#sort=%64ice-2-asc",
    "#sort=dice-2-asc#sort=flags-desc", "#sort=javascript:document.body.setAttribute('data-ran',3)-asc",
    "#sort=" + "a" * 5000 + "-asc", "#case-bad",
]


def test_an_unknown_or_hostile_fragment_is_ignored(built):
    """A link's fragment is anyone's to write: one naming no column, or holding markup, a selector, a script or an
    object's inherited name, leaves the page as written (worst first, # marked), makes no element and runs nothing."""
    probe = ("(()=>{const s=" + STATE + ";s.made=document.querySelectorAll('img:not([src^=\"data:\"]),svg,iframe,"
             "object,embed,[onerror],[onload]').length;s.ran=document.body.getAttribute('data-ran');"
             "s.scripts=document.scripts.length;return s;})()")
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        written = tools.evaluate(probe)
        seen = {}
        for fragment in HOSTILE_FRAGMENTS:
            tools.open(built.html.as_uri() + fragment)
            seen[fragment] = tools.evaluate(probe)
    assert written["sorted"] == ["# ascending"] and written["heading"] == "Cases, worst first"
    for fragment, state in seen.items():
        assert {k: v for k, v in state.items() if k != "fragment"} == \
            {k: v for k, v in written.items() if k != "fragment"}, fragment
    assert written["made"] == 0 and written["ran"] is None and written["scripts"] == 1


def test_the_rank_column_sorts_worst_first_on_its_first_click_like_every_column(built):
    """The table is written in rank order, so # was marked ascending and its first click reversed it (best first):
    the other columns' first click gives their worst first. #'s first click now gives the worst-first order, as
    written; the second the other way; the third worst first again."""
    rows = read_tsv(built.table)
    ranked = [_case_id(row) for row in rows]
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        clicks = [_click(tools, "#") for _ in range(3)]
    assert [state["ids"] for state in clicks] == [ranked, ranked[::-1], ranked]
    assert [state["sorted"] for state in clicks] == [["# ascending"], ["# descending"], ["# ascending"]]
    assert [state["heading"] for state in clicks] == ["Cases, worst first", "Cases, by rank, descending",
                                                      "Cases, worst first"]


ARROWS = "\u2195\u2191\u2193"


def test_the_sort_arrow_is_not_read_but_the_sorted_head_says_its_order(built):
    """The arrow after each head's text (CSS content) was part of each button's name and its column's: a screen
    reader read "Dice box up down arrow". It is decorative now (its alternative text is empty), still drawn; the
    sorted head keeps ``aria-sort`` (the DevTools tree has no property for it: read from the DOM)."""
    heads = ["#", "case", "status", "flags", "Dice ball", "Dice box", "predicted ball (ml)", "predicted box (ml)",
             "largest volume difference"]

    def read(tools: DevTools) -> tuple[list[str], list[str], list[str]]:
        tree = [node for node in tools.accessibility_tree() if not node.get("ignored")]
        names = [node.get("name", {}).get("value", "") for node in tree]
        of = {role: [node.get("name", {}).get("value") for node in tree if node.get("role", {}).get("value") == role]
              for role in ("button", "columnheader")}
        return [name for name in names if any(arrow in name for arrow in ARROWS)], of["button"], of["columnheader"]

    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        written = read(tools)
        drawn = tools.evaluate("[...document.querySelectorAll('table.sortable th button')].map(b=>"
                               "getComputedStyle(b,'::after').content).join(' ')")
        clicked = _click(tools, "Dice box")
        after = read(tools)
    assert written[0] == [] and after[0] == []  # no arrow in any name the tree gives a screen reader
    assert written[1] == after[1] == heads
    assert all(head in written[2] for head in heads)
    assert drawn.count("\u2191") == 1 and drawn.count("\u2195") == len(heads) - 1  # still drawn: # as written
    assert clicked["sorted"] == ["Dice box ascending"]


def test_the_many_label_table_keeps_and_says_its_order_too(many_labels):
    """With many labels the case table has other columns (the lowest and the mean Dice): their keys restore an order
    from the address, and the heading and caption name them."""
    _, built = many_labels
    with fresh_page() as tools:
        tools.open(built.html.as_uri() + "#sort=mean-dice-desc")
        shared = tools.evaluate(STATE)
        column = tools.evaluate("[...document.querySelector('table.sortable').tHead.rows[0].cells].findIndex("
                                "h=>h.textContent==='mean Dice')")
        means = tools.evaluate(f"[...document.querySelector('table.sortable').tBodies[0].rows].map(r=>"
                               f"Number(r.cells[{column}].getAttribute('data-v')))")
        lowest = _click(tools, "lowest Dice")
    assert shared["sorted"] == ["mean Dice descending"] and shared["fragment"] == "#sort=mean-dice-desc"
    assert shared["heading"] == "Cases, by mean Dice, descending"
    assert shared["caption"] == "Every case, by mean Dice, descending: status, flags, lowest and mean Dice"
    assert means == sorted(means, reverse=True) and means[-1] == -1 and len(set(means)) > 2  # the failed case last
    assert shared["ids"][-1] == "m_failed"
    assert lowest["fragment"] == "#sort=lowest-dice-asc" and lowest["ids"][0] == "m_failed"


def _followed(tools: DevTools, selector: str) -> dict:
    """Clicks the link ``selector`` finds (a case's link, a contents link: a new history entry) and gives the page's
    :data:`STATE` with where the link's target is (its top in the viewport, px) and the page's scroll offset."""
    tools.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
    return _placed(tools)


def _placed(tools: DevTools) -> dict:
    return tools.evaluate("new Promise(done=>setTimeout(()=>{const s=" + STATE + ";const t=document.getElementById("
                          "location.hash.slice(1));s.top=t?Math.round(t.getBoundingClientRect().top):null;"
                          "s.scroll=Math.round(scrollY);done(s);},50))")


def test_a_case_or_contents_link_keeps_the_order_through_reload_and_back_and_forward(built):
    """Sorted by flags, a case's link (or a contents link) replaced ``#sort=flags-desc`` in the address by its own
    fragment: a reload there, or Back and Forward to it, showed the table worst first again. The order in force when
    the link is followed is kept with its history entry (``history.state``): reload, Back and Forward show that
    order, and the link's target where it was."""
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        sorted_by_flags = _click(tools, "flags")
        case = _followed(tools, 'table.sortable a[href="#case-crashed"]')
        tools.reload()
        case_reloaded = _placed(tools)
        contents = _followed(tools, 'nav a[href="#worst"]')
        tools.reload()
        contents_reloaded = _placed(tools)
        row = _followed(tools, 'a[href="#row-case-bad"]')  # a card's link back to its row, which the order moved
        tools.reload()
        row_reloaded = _placed(tools)
        back = _traversed(tools, -1, "#worst")
        back_to_case = _traversed(tools, -1, "#case-crashed")
        back_to_case_top = _placed(tools)["top"]
        back_to_sort = _traversed(tools, -1, "#sort=flags-desc")
        forward = _traversed(tools, 1, "#case-crashed")
        forward_top = _placed(tools)["top"]
    ids = sorted_by_flags["ids"]
    for state in (case, case_reloaded, contents, contents_reloaded, row, row_reloaded, back, back_to_case,
                  back_to_sort, forward):
        assert state["ids"] == ids and state["sorted"] == ["flags descending"], state["fragment"]
        assert state["heading"] == "Cases, by flags, descending", state["fragment"]
    assert case_reloaded["fragment"] == "#case-crashed" and contents_reloaded["fragment"] == "#worst"
    # the target where the link put it, after a reload too
    assert case_reloaded["scroll"] == case["scroll"] and abs(case_reloaded["top"] - case["top"]) <= 1
    assert contents_reloaded["scroll"] == contents["scroll"]
    assert row["top"] is not None and abs(row["top"]) <= 1 and abs(row_reloaded["top"] - row["top"]) <= 1
    assert abs(back_to_case_top - case["top"]) <= 1 and abs(forward_top - case["top"]) <= 1


def test_a_link_followed_in_the_pages_own_order_keeps_that_order(built):
    """A link followed in the order as written keeps it: sorted by status afterwards (the link's entry replaced by
    ``#sort=status-asc``), Back to an earlier link's entry shows the order as written, which that entry was in."""
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        written = tools.evaluate(STATE)
        _followed(tools, 'table.sortable a[href="#case-crashed"]')
        _followed(tools, 'table.sortable a[href="#case-bad"]')
        by_status = _click(tools, "status")
        back = _traversed(tools, -1, "#case-crashed")
        tools.reload()
        reloaded = tools.evaluate(STATE)
        forward = _traversed(tools, 1, "#sort=status-asc")
    assert by_status["sorted"] == ["status ascending"]
    assert back["ids"] == reloaded["ids"] == written["ids"] and back["sorted"] == ["# ascending"]
    assert back["heading"] == reloaded["heading"] == "Cases, worst first"
    assert forward["ids"] == by_status["ids"]


def test_an_order_kept_in_one_tab_does_not_reach_the_next_tests_tab(built):
    """The driven pages share one browser (a fresh tab each): an order a tab kept with its history entry
    (``history.state``) or anywhere else the page could keep it, reached no later tab, which opens the page in its
    own order as a reader's new tab does."""
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        written = tools.evaluate(STATE)
        _click(tools, "flags")
        kept = _followed(tools, 'table.sortable a[href="#case-crashed"]')
    with fresh_page() as tools:
        tools.open(built.html.as_uri() + "#case-crashed")
        fresh = tools.evaluate(STATE)
        state = tools.evaluate("[history.length, history.state, localStorage.length, sessionStorage.length]")
    assert kept["ids"] != written["ids"] and kept["sorted"] == ["flags descending"]
    assert fresh["ids"] == written["ids"] and fresh["sorted"] == ["# ascending"]
    # the blank page the tab opened with, and this page, whose entry the page marks with its own order ("")
    assert state == [2, {"medsegSort": {"0": ""}}, 0, 0]


def test_an_unknown_order_reached_by_back_or_typed_gives_the_pages_own_order(built):
    """Sorted by flags, then the address edited to an order that names no column (``#sort=nothing-asc``, a link of an
    older page), Back from a later order to it left the table in the order before (status), while the address said
    none the page knows: a reload then showed worst first. An unknown order, reached by Back or typed, is the page's
    own order, as a reload of it gives."""
    with fresh_page() as tools:
        tools.open(built.html.as_uri())
        written = tools.evaluate(STATE)
        _click(tools, "flags")
        tools.evaluate("location.hash='#sort=nothing-asc'")  # typed: a new entry
        typed = tools.evaluate("new Promise(done=>setTimeout(()=>done(" + STATE + "),50))")
        _click(tools, "status")  # the typed entry replaced by #sort=status-asc
        tools.evaluate("location.hash='#sort=dice-2-sideways'")  # typed again
        _click(tools, "Dice box")  # #sort=dice-2-asc replaces it
        tools.evaluate("history.replaceState(history.state,'','#sort=nothing-desc')")  # as an older page left it
        tools.evaluate("location.hash='#case-crashed'")
        _click(tools, "status")
        back = _traversed(tools, -1, "#sort=nothing-desc")
        tools.reload()
        reloaded = tools.evaluate(STATE)
    assert typed["sorted"] == ["# ascending"] and typed["ids"] == written["ids"]
    assert typed["heading"] == written["heading"] == "Cases, worst first"
    assert back["sorted"] == ["# ascending"] and back["ids"] == written["ids"], back
    assert {k: v for k, v in back.items() if k != "fragment"} == {k: v for k, v in reloaded.items() if k != "fragment"}
