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
  document.querySelectorAll("table").forEach(function (table) {
    var ths = table.querySelectorAll("thead th");
    ths.forEach(function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        ths.forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("none"); });
        rows.sort(function (a, b) {
          var c = cmp(key(a.cells[col]), key(b.cells[col]));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  // Filter rows as one types; the form still works without script.
  var input = document.getElementById("filter");
  function count() {
    document.querySelectorAll("[data-count-for]").forEach(function (el) {
      var t = document.getElementById(el.getAttribute("data-count-for"));
      var rows = Array.prototype.filter.call(t.tBodies[0].rows, function (r) { return !r.classList.contains("none"); });
      var shown = rows.filter(function (r) { return !r.hidden; }).length;
      el.textContent = "(" + (shown === rows.length ? rows.length : shown + " of " + rows.length) + ")";
    });
  }
  input.addEventListener("input", function () {
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    document.querySelectorAll("tbody tr").forEach(function (r) {
      if (r.classList.contains("none")) return;
      var text = r.textContent.toLowerCase();
      r.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
    count();
  });
  input.form.addEventListener("submit", function (e) { e.preventDefault(); });
  count();
})();
