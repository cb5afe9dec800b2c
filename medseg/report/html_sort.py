"""The case table's sorting: one small script, the page's only one, that the page's Content-Security-Policy allows
by its SHA-256 and no other (a script that slipped into the page through a name would still not run).

The table is written worst first, which a viewer that runs no script shows as it is. The script makes each column
head of a sortable table (``<th data-sort="num|text" data-key="…">``) a button, and shows the words that say so
(``.sort-help``, hidden without script); the head of the order in force has ``aria-sort`` (as written: ``#``,
ascending). A click sorts the rows by that column, worst first for that column (``data-first``: the lowest Dice, the
most flags, the largest volume difference; ``#``: the page's own order), a click on the column sorted by the other
way. A cell's sort key is its ``data-v`` attribute where it has one, else its text (compared by one numeric-aware
``Intl.Collator``: ``case_9`` before ``case_10``); a cell with an empty key (no Dice: a case without reference, a
label empty in both masks) sorts last either way, and rows of equal keys keep the page's worst-first order
(``data-rank``).

The table's heading (``data-title``: its id), its caption and the table of contents' link to its section say the order:
their words ``data-order`` ("worst first") become "by <column>, ascending|descending" (``data-name`` where the head's
text would not do), back to the words as written for the page's own order. The order is kept in the URL's fragment,
``#sort=<data-key>-asc|desc`` (replaced, not pushed: Back leaves the page), which the script reads as the page loads, so
a reload or a shared link shows it again, and as the fragment changes (Back or Forward past a case's link, an edited
address: the table is then in the order its address names; Back to the address as opened without a fragment, the page's
own order); a fragment that is not of that form or names no column's key (compared as a string, never made a selector)
is the page's own order too, typed or reached by Back (it left the order in force, which a reload of that address did
not show); any other fragment is a link's, and leaves the order as it is. A link within the page (a case's, a card's
back to its row, the contents') puts its own fragment in the address, in a new history entry: the order in force is kept
with that entry, in ``history.state.medsegSort`` (the table's index on the page: its order's ``<data-key>-asc|desc``, or
``""`` for the page's own), which a reload of that entry, or Back or Forward to it, restores (the browser then puts the
link's target where it was: the rows are in the order they were in when it was left); before, such an entry showed the
page's own order, whatever the table had been sorted by. The script reads attributes and text only, writes text only,
and moves the rows' own elements: no name on the page, nor the fragment, is ever parsed as markup.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["SORT_SCRIPT", "SORT_SCRIPT_HASH", "sort_script_tag"]

SORT_SCRIPT = """(()=>{
const collator=new Intl.Collator(undefined,{numeric:true});
for(const help of document.querySelectorAll(".sort-help"))help.hidden=false;
[...document.querySelectorAll("table.sortable")].forEach((table,n)=>{
const body=table.tBodies[0],heads=[...table.tHead.rows[0].cells],words=table.getAttribute("data-order")||"";
const title=document.getElementById(table.getAttribute("data-title")||""),cap=table.caption;
const section=table.closest("[id]"),links=[...document.querySelectorAll("nav a")].filter(a=>section&&
a.getAttribute("href")==="#"+section.id);
const said=[title,cap,...links].filter(Boolean).map(node=>[node,node.textContent]);
const own=heads.findIndex(h=>h.hasAttribute("aria-sort")),ownOrder=own<0?"":heads[own].getAttribute("aria-sort");
let active=-1,current="";
const key=(row,i)=>{const c=row.cells[i];
return c.hasAttribute("data-v")?c.getAttribute("data-v"):c.textContent.trim();};
const sort=(i,order)=>{
const head=heads[i],kind=head.getAttribute("data-sort");active=i;
current=head.getAttribute("data-key")+(order==="ascending"?"-asc":"-desc");
for(const other of heads)other.removeAttribute("aria-sort");head.setAttribute("aria-sort",order);
const sign=order==="ascending"?1:-1,rank=r=>Number(r.getAttribute("data-rank"));
const rows=[...body.rows].sort((x,y)=>{const a=key(x,i),b=key(y,i);
if(a===""||b==="")return (a==="")-(b==="")||rank(x)-rank(y);
const d=kind==="num"?Number(a)-Number(b):collator.compare(a,b);
return sign*d||rank(x)-rank(y);});
for(const row of rows)body.appendChild(row);
const now="by "+(head.getAttribute("data-name")||head.textContent.trim())+", "+order;
for(const [node,text] of said)node.textContent=!words||i===own&&order===ownOrder?text:text.replace(words,()=>now);};
const reset=()=>{if(own>=0)sort(own,ownOrder);active=-1;current="";};
const named=text=>{const asked=/^([A-Za-z0-9._-]+)-(asc|desc)$/.exec(text);
const i=asked?heads.findIndex(h=>h.getAttribute("data-sort")&&h.getAttribute("data-key")===asked[1]):-1;
return i<0?null:[i,asked[2]==="asc"?"ascending":"descending"];};
const entry=()=>{const state=history.state;return state&&typeof state==="object"&&!Array.isArray(state)?state:{};};
const saved=()=>{const kept=entry().medsegSort;const order=kept&&typeof kept==="object"?kept[n]:undefined;
return typeof order==="string"&&Object.prototype.hasOwnProperty.call(kept,n)?order:null;};
const keep=url=>{const state=entry(),kept=state.medsegSort&&typeof state.medsegSort==="object"?state.medsegSort:{};
try{history.replaceState(Object.assign({},state,{medsegSort:Object.assign({},kept,{[n]:current})}),"",url);}
catch(error){}};
heads.forEach((head,i)=>{
if(!head.getAttribute("data-sort"))return;
const button=document.createElement("button");button.type="button";
while(head.firstChild)button.appendChild(head.firstChild);head.appendChild(button);
button.addEventListener("click",()=>{
const first=head.getAttribute("data-first")==="desc"?"descending":"ascending";
const order=active===i&&head.getAttribute("aria-sort")===first?(first==="ascending"?"descending":"ascending"):first;
sort(i,order);keep("#sort="+current);});});
const restore=changed=>{const hash=location.hash;
if(hash.startsWith("#sort=")){const chosen=named(hash.slice(6));if(chosen)sort(...chosen);else if(active>=0)reset();
return;}
const kept=saved();
if(kept!==null){const chosen=named(kept);if(chosen)sort(...chosen);else if(!kept&&(changed||active>=0))reset();}
else if(!hash){if(changed)reset();}
else keep();};
restore(false);addEventListener("hashchange",()=>restore(true));addEventListener("popstate",()=>restore(true));});
})();"""

# the Content-Security-Policy's source for the script: its SHA-256, base64, over its UTF-8 text exactly as written
SORT_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode("utf-8")).digest()).decode("ascii")


def sort_script_tag() -> str:
    """The script element, its text byte for byte the one :data:`SORT_SCRIPT_HASH` hashes."""
    return f"<script>{SORT_SCRIPT}</script>"
