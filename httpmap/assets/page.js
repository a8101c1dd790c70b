"use strict";
(function () {
  // Click a column heading to sort by it; click again to reverse.
  function key(td) {
    var v = td.getAttribute("data-sort");
    if (v === null) v = td.textContent.trim();
    var n = Number(v);
    return v !== "" && !isNaN(n) ? n : v.toLowerCase();
  }
  function cmp(a, b) {
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === "number" ? -1 : 1;
  }
  function rowsOf(table) {
    return Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.classList.contains("none"); });
  }
  function sortTable(table, col, asc) {
    var body = table.tBodies[0];
    var rows = rowsOf(table);
    rows.sort(function (a, b) {
      var c = cmp(key(a.cells[col]), key(b.cells[col]));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  // resort sorts a table again as its headings say, after new rows came.
  function resort(table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      var s = th.getAttribute("aria-sort");
      if (s) sortTable(table, col, s === "ascending");
    });
  }
  document.querySelectorAll("table").forEach(function (table) {
    var ths = table.querySelectorAll("thead th");
    ths.forEach(function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        ths.forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        sortTable(table, col, asc);
      });
    });
  });
  // Filter rows as one types; the form still works without script.
  var input = document.getElementById("filter");
  function count() {
    document.querySelectorAll("[data-count-for]").forEach(function (el) {
      var rows = rowsOf(document.getElementById(el.getAttribute("data-count-for")));
      var shown = rows.filter(function (r) { return !r.hidden; }).length;
      el.textContent = "(" + (shown === rows.length ? rows.length : shown + " of " + rows.length) + ")";
    });
  }
  function filter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    document.querySelectorAll("tbody tr").forEach(function (r) {
      if (r.classList.contains("none")) return;
      var text = r.textContent.toLowerCase();
      r.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
    count();
  }
  input.addEventListener("input", filter);
  input.form.addEventListener("submit", function (e) { e.preventDefault(); });
  count();

  // Live: each change the event stream announces brings the page's
  // tables anew from the server, rendered as this page was, so that the
  // page stays current without a reload. Changes that come together are
  // fetched once.
  var events = document.body.getAttribute("data-events");
  if (!events || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var live = document.getElementById("live");
  var page = new URL(location.href);
  ["index", "wait"].forEach(function (k) { page.searchParams.delete(k); });
  var pending = null;
  function apply(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var ok = ["services", "rpc"].every(function (id) { return fresh.getElementById(id); });
    if (!ok) {
      location.reload();
      return;
    }
    ["services", "rpc"].forEach(function (id) {
      var table = document.getElementById(id);
      table.replaceChild(document.adoptNode(fresh.getElementById(id).tBodies[0]), table.tBodies[0]);
      resort(table);
    });
    var sub = fresh.querySelector(".sub");
    if (sub) document.querySelector(".sub").firstChild.textContent = sub.firstChild.textContent;
    filter();
  }
  function refresh() {
    pending = null;
    fetch(page.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (r) { return r.text(); })
      .then(apply)
      .catch(function () { live.hidden = true; });
  }
  function changed() {
    if (pending === null) pending = setTimeout(refresh, 100);
  }
  var stream = new EventSource(events);
  stream.onopen = function () { live.hidden = false; };
  stream.onerror = function () { live.hidden = true; };
  ["added", "removed", "changed", "reset"].forEach(function (t) { stream.addEventListener(t, changed); });
})();
