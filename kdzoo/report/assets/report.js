/* kdzoo report: sortable and filterable tables, per-method switches for the figures. No dependencies
   beyond BokehJS (inline in the page), no network. */
(function () {
  "use strict";

  // ---- sorting: a click on a header sorts by that column, a second click reverses
  function sortKey(td, numeric) {
    if (numeric && td.dataset.sort !== undefined) {
      var x = parseFloat(td.dataset.sort);
      return isNaN(x) ? null : x;          // empty values sort last either way
    }
    var t = td.textContent.trim().toLowerCase();
    return t === "—" || t === "" ? null : t;
  }

  function sortTable(table, index, th) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var numeric = th.dataset.kind === "num";
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[index], numeric), y = sortKey(b.cells[index], numeric);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, index, th); }
      });
    });
  });

  // ---- filtering: rows of every filterable table that contain all the words typed
  var filter = document.getElementById("filter");
  function applyFilter() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    document.querySelectorAll("table.filterable").forEach(function (table) {
      var shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (tr) {
        var text = tr.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        tr.hidden = !keep;
        shown += keep ? 1 : 0;
      });
      table.dataset.shown = String(shown);
    });
  }
  if (filter) { filter.addEventListener("input", applyFilter); }

  // ---- method switches: each checkbox shows or hides the Bokeh renderers it lists
  function bokehDocument() {
    return window.Bokeh && window.Bokeh.documents && window.Bokeh.documents.length
      ? window.Bokeh.documents[0] : null;
  }

  function apply(box) {
    var doc = bokehDocument();
    if (!doc) { return; }
    box.dataset.renderers.split(" ").forEach(function (id) {
      var model = doc.get_model_by_id(id);
      if (model) { model.visible = box.checked; }
    });
  }

  document.querySelectorAll("input.method-toggle").forEach(function (box) {
    box.addEventListener("change", function () { apply(box); });
  });
  document.querySelectorAll("button[data-toggle-all]").forEach(function (button) {
    button.addEventListener("click", function () {
      var on = button.dataset.toggleAll === "on";
      var group = document.getElementById(button.dataset.group);
      group.querySelectorAll("input.method-toggle").forEach(function (box) {
        box.checked = on;
        apply(box);
      });
    });
  });
})();
