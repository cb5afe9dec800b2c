"""What sorting the report's case table by a text column costs in Chromium: the page's script, which compares text
keys with one ``Intl.Collator``, against the same script comparing them with ``localeCompare`` (options given:
a collator built per comparison, as the script did before).

    python benchmarks/report_sort.py REPORT.html [--rows 400] [--clicks 11]

Opens a copy of a medseg report (any: ``medseg report`` writes one) twice in headless Chromium, driven over its
DevTools pipe (the tests' driver, ``tests/chromium_page.py``): as written, and with the script's comparison of text
keys replaced (the copy's Content-Security-Policy given the changed script's SHA-256). In each, the case table is
filled to ``--rows`` rows (clones of its own, case ids ``case_<n>``), and before each of ``--clicks`` clicks on the
``case`` head its rows are shuffled (a fixed seed: the same orders in both), so that each click sorts from a
random order. Prints each click's milliseconds (the first, with the collator's data loaded, apart), the median of
the others and the ratio of the medians measured in this one run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import statistics
import sys
import tempfile
from pathlib import Path

from argument_types import positive
from stderr_line import stderr_line

LOCALE_COMPARE = "a.localeCompare(b,undefined,{numeric:true})"

# fills the table, then times each click on the case head (rows shuffled before each, with a fixed seed)
PROBE = """(()=>{const t=document.querySelector('table.sortable'),b=t.tBodies[0],rows=[...b.rows];
let n=0;while(b.rows.length<%(rows)d){const r=rows[n%%rows.length].cloneNode(true);
r.setAttribute('data-rank',String(b.rows.length+1));r.cells[1].textContent='case_'+((b.rows.length*7919)%%100000);
b.appendChild(r);n++;}
const head=[...t.tHead.rows[0].cells].find(h=>h.getAttribute('data-key')==='case'),out=[];let seed=1;
for(let k=0;k<%(clicks)d;k++){const all=[...b.rows];for(let j=all.length-1;j>0;j--){seed=(seed*48271)%%2147483647;
const m=seed%%(j+1);[all[j],all[m]]=[all[m],all[j]];}for(const r of all)b.appendChild(r);
const clock=performance.now();head.querySelector('button').click();out.push(performance.now()-clock);}
return out;})()"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--rows", type=positive, default=400)
    parser.add_argument("--clicks", type=positive, default=11)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from chromium_page import CHROMIUM, DevTools

    from medseg.report.html_sort import SORT_SCRIPT, SORT_SCRIPT_HASH

    try:
        page = args.report.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        stderr_line(f"error: {args.report}: cannot be read as a report page ({error.strerror or error})"
                    if isinstance(error, OSError) else f"error: {args.report}: not UTF-8 text, not a report page")
        return 1
    if SORT_SCRIPT not in page:
        stderr_line(f"error: {args.report}: not a page of this medseg's report (its sorting script differs)")
        return 1
    if CHROMIUM is None:
        stderr_line("error: chromium is not on PATH")
        return 1
    before = SORT_SCRIPT.replace("collator.compare(a,b)", LOCALE_COMPARE)
    before_hash = "sha256-" + base64.b64encode(hashlib.sha256(before.encode("utf-8")).digest()).decode("ascii")
    pages = {"one Intl.Collator (now)": page,
             "localeCompare per comparison (before)": page.replace(SORT_SCRIPT, before).replace(SORT_SCRIPT_HASH,
                                                                                               before_hash)}
    medians = {}
    with tempfile.TemporaryDirectory() as scratch, DevTools() as tools:
        for name, text in pages.items():
            copy = Path(scratch) / "report.html"
            copy.write_text(text, encoding="utf-8")
            tools.open(copy.as_uri())
            times = tools.evaluate(PROBE % {"rows": args.rows, "clicks": args.clicks})
            medians[name] = statistics.median(times[1:]) if len(times) > 1 else times[0]
            print(f"{name}: {args.rows} rows, first click {times[0]:.1f} ms, median of the other "
                  f"{len(times) - 1} {medians[name]:.1f} ms (all: {', '.join(f'{t:.1f}' for t in times)})")
    now, earlier = medians.values()
    print(f"ratio, now / before: {now / earlier:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
