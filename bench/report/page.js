function key(cell){var t=cell.textContent.trim(),x=parseFloat(t);return isNaN(x)?null:x}
function sortBy(th){
  var table=th.closest("table"),col=th.cellIndex,body=table.tBodies[0];
  var up=th.getAttribute("aria-sort")!=="ascending";
  for(var h of table.tHead.rows[0].cells)h.removeAttribute("aria-sort");
  th.setAttribute("aria-sort",up?"ascending":"descending");
  var rows=Array.from(body.rows),numeric=rows.some(r=>key(r.cells[col])!==null);
  rows.sort(function(a,b){
    var x=a.cells[col],y=b.cells[col];
    if(!numeric)return (up?1:-1)*x.textContent.localeCompare(y.textContent);
    x=key(x);y=key(y);
    if(x===null||y===null)return (x===null)-(y===null);
    return up?x-y:y-x});
  for(var r of rows)body.appendChild(r)}
function filter(){
  var tag=document.getElementById("tag").value,family=document.getElementById("family").value;
  for(var s of document.querySelectorAll("section[data-tags]"))
    s.classList.toggle("hidden",tag!==""&&s.dataset.tags.split(" ").indexOf(tag)<0);
  for(var r of document.querySelectorAll("tr[data-family]"))
    r.classList.toggle("hidden",family!==""&&r.dataset.family!==family)}
for(var th of document.querySelectorAll("thead th"))
  th.addEventListener("click",e=>sortBy(e.target));
for(var id of ["tag","family"])document.getElementById(id).addEventListener("change",filter);
for(var part of location.hash.slice(1).split("&")){
  var kv=part.split("="),v=decodeURIComponent(kv[1]||"");
  if(kv[0]==="click"){var p=v.split(":");
    document.getElementById(p[0]).tHead.rows[0].cells[+p[1]].click()}
  else if(kv[0]==="tag"||kv[0]==="family"){document.getElementById(kv[0]).value=v;filter()}}
