/*
 * The behaviour Great Expectations writes into its Data Docs as inline scripts and
 * onclick attributes, as one external file, so the pages run under a
 * Content-Security-Policy without 'unsafe-inline' (see bridge/quality/data_docs.py).
 *
 * The build step replaces each inline script by data in attributes:
 *   data-bridge-table='{"table": id, "columns": [...], "data": [...], "toolbar": "#id", "options": {...}}'
 *   data-bridge-vega='{"target": "#id", "spec": {...}}'
 *   data-bridge-click="showAllValidations" (with data-bridge-arg for clearTableFilters)
 * and this file turns them back into tables, charts and handlers.
 */

// bootstrap-table resolves option values such as 'rowStyleLinks' by name on window,
// so these helpers (from GX's bootstrap_table_js_functions.j2) stay global.
function rowStyleLinks() {
  return { css: { cursor: "pointer" } };
}

function rowAttributesLinks(row) {
  return { "class": "clickable-row", "data-href": row._table_row_link_path };
}

function expectationSuiteNameFilterDataCollector(value, row) {
  return row._expectation_suite_name_sort;
}

function validationSuccessFilterDataCollector(value, row) {
  return row._validation_success_text;
}

function formatRuntimeDateForFilter(text, value) {
  var d = new Date(value);
  var month = String(d.getMonth() + 1).padStart(2, "0");
  var day = String(d.getDate()).padStart(2, "0");
  return text === [d.getFullYear(), month, day].join("-");
}

function clearTableFilters(tableId) {
  var table = $(document.getElementById(tableId));
  table.bootstrapTable("clearFilterControl");
  table.bootstrapTable("resetSearch");
}

(function () {
  "use strict";

  function toggleSucceeded(show) {
    var fade = show ? "fadeIn" : "fadeOut";
    $(".hide-succeeded-validation-target-child").parent()[fade]();
    $(".hide-succeeded-validation-target")[fade]();
    $(".hide-succeeded-validations-column-section-target-child").parent().parent().each(function (i, el) {
      $(el)[fade]();
      $("a[href$='" + el.id + "']")[fade]();
    });
  }

  var clicks = {
    showAllValidations: function () { toggleSucceeded(true); },
    hideSucceededValidations: function () { toggleSucceeded(false); },
    clearTableFilters: function (el) { clearTableFilters(el.getAttribute("data-bridge-arg")); }
  };

  function readJson(el, name) {
    try {
      return JSON.parse(el.getAttribute(name));
    } catch (err) {
      console.warn("Data Docs: unreadable " + name, err);
      return null;
    }
  }

  function initTable(el) {
    var init = readJson(el, "data-bridge-table");
    if (!init) { return; }
    var table = $(document.getElementById(init.table));
    table.bootstrapTable(Object.assign(
      { columns: init.columns, data: init.data, toolbar: init.toolbar }, init.options
    ));
    if (init.titleRow) {
      table.children("thead").prepend(init.titleRow);
    }
    if (init.clickRows) {
      table.on("click-row.bs.table", function (e, row, $element) {
        window.location = $element.data("href");
      });
    }
  }

  function initChart(el) {
    var init = readJson(el, "data-bridge-vega");
    if (!init || typeof vegaEmbed !== "function") { return; }
    // ast + interpreter: Vega evaluates expressions without eval(), which the CSP forbids.
    vegaEmbed(init.target, init.spec, { actions: false, ast: true, expr: vega.expressionInterpreter })
      .catch(function (err) { console.warn("Data Docs: chart not drawn", err); });
  }

  // This file is loaded with defer: it runs once the page is parsed and before
  // DOMContentLoaded, i.e. where GX's inline scripts ran, before bootstrap-table's
  // own start-up turns every data-toggle="table" into an empty table.
  document.querySelectorAll("[data-bridge-table]").forEach(initTable);
  $(function () {
    document.querySelectorAll("[data-bridge-vega]").forEach(initChart);
    document.querySelectorAll("[data-bridge-click]").forEach(function (el) {
      var action = clicks[el.getAttribute("data-bridge-click")];
      if (action) {
        el.addEventListener("click", function () { action(el); });
      }
    });
    if (sessionStorage.getItem("showCta") !== "false") {
      $("#ge-cta-footer").removeClass("invisible");
    }
    $("#ge-cta-footer").on("closed.bs.alert", function () { sessionStorage.setItem("showCta", "false"); });
  });
})();
