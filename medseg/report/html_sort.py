"""The case table's sorting: one small script, the page's only one, that the page's Content-Security-Policy allows
by its SHA-256 and no other (a script that slipped into the page through a name would still not run).

The table is written worst first, which a viewer that runs no script shows as it is. The script makes each column
head of a sortable table (``<th data-sort="num|text">``) a button, and shows the words that say so (``.sort-help``,
hidden without script); the head of the order in force has ``aria-sort`` (as written: ``#``, ascending). A click
sorts the rows by that column, worst first for that column (``data-first``: the lowest Dice, the most flags, the
largest volume difference), a second click the other way. A cell's sort key is its ``data-v`` attribute where it
has one, else its text; a cell with an empty key (no Dice: a case without reference, a label empty in both masks)
sorts last either way, and rows of equal keys keep the page's worst-first order (``data-rank``). The script reads
attributes and text only and moves the rows' own elements: no name on the page is ever parsed as markup.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["SORT_SCRIPT", "SORT_SCRIPT_HASH", "sort_script_tag"]

SORT_SCRIPT = """(()=>{
for(const help of document.querySelectorAll(".sort-help"))help.hidden=false;
for(const table of document.querySelectorAll("table.sortable")){
const body=table.tBodies[0],heads=[...table.tHead.rows[0].cells];
const key=(row,i)=>{const c=row.cells[i];
return c.hasAttribute("data-v")?c.getAttribute("data-v"):c.textContent.trim();};
heads.forEach((head,i)=>{
const kind=head.getAttribute("data-sort");if(!kind)return;
const button=document.createElement("button");button.type="button";
while(head.firstChild)button.appendChild(head.firstChild);head.appendChild(button);
button.addEventListener("click",()=>{
const now=head.getAttribute("aria-sort"),first=head.getAttribute("data-first")==="desc"?"descending":"ascending";
const order=now===first?(first==="ascending"?"descending":"ascending"):first;
for(const other of heads)other.removeAttribute("aria-sort");head.setAttribute("aria-sort",order);
const sign=order==="ascending"?1:-1,rank=r=>Number(r.getAttribute("data-rank"));
const rows=[...body.rows].sort((x,y)=>{const a=key(x,i),b=key(y,i);
if(a===""||b==="")return (a==="")-(b==="")||rank(x)-rank(y);
const d=kind==="num"?Number(a)-Number(b):a.localeCompare(b,undefined,{numeric:true});
return sign*d||rank(x)-rank(y);});
for(const row of rows)body.appendChild(row);});});}
})();"""

# the Content-Security-Policy's source for the script: its SHA-256, base64, over its UTF-8 text exactly as written
SORT_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode("utf-8")).digest()).decode("ascii")


def sort_script_tag() -> str:
    """The script element, its text byte for byte the one :data:`SORT_SCRIPT_HASH` hashes."""
    return f"<script>{SORT_SCRIPT}</script>"
