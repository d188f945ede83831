// The workflow editor: CodeMirror over the plain textarea (which works without it), problem lines marked
// after each live check, "Line N" buttons that move the cursor there, and name pickers that insert text.
(function () {
  "use strict";
  function start() {
    var area = document.getElementById("source");
    if (!area || typeof CodeMirror === "undefined") return;
    var cm = CodeMirror.fromTextArea(area, {
      // The editor grows with the text (specs are small) so the page scrolls, not a region keyboards can't reach.
      mode: "yaml", lineNumbers: true, viewportMargin: Infinity, indentUnit: 2, tabSize: 2, lineWrapping: true,
      screenReaderLabel: "Workflow spec (YAML)",
      // Tab leaves the editor as it leaves any field (keyboard users are never trapped); indent with spaces.
      extraKeys: { Tab: false, "Shift-Tab": false },
    });
    cm.on("change", function () {
      cm.save();
      area.dispatchEvent(new Event("input", { bubbles: true }));
    });
    var marked = [];
    function markProblems() {
      marked.forEach(function (line) { cm.removeLineClass(line, "background", "cm-problem-line"); });
      marked = [];
      document.querySelectorAll("#editor-check .problem[data-line]").forEach(function (item) {
        var line = parseInt(item.getAttribute("data-line"), 10);
        if (line > 0) { marked.push(cm.addLineClass(line - 1, "background", "cm-problem-line")); }
      });
    }
    document.addEventListener("htmx:afterSwap", function (event) {
      if (event.detail.target && event.detail.target.id === "editor-check") markProblems();
    });
    document.addEventListener("click", function (event) {
      var goto = event.target.closest("button.goto");
      if (goto) {
        var line = parseInt(goto.getAttribute("data-line"), 10) - 1;
        cm.focus();
        cm.setCursor({ line: line, ch: 0 });
        cm.scrollIntoView({ line: line, ch: 0 }, 80);
        return;
      }
      var insert = event.target.closest("button.insert");
      if (insert) {
        cm.replaceSelection(insert.getAttribute("data-insert"));
        cm.focus();
      }
    });
    markProblems();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
