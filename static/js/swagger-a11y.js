/* Swagger UI renders some icon buttons and inputs with no name (a copy button, the expand arrows, the
   example textarea): give each the name its neighbours imply, whenever Swagger UI re-renders. */
(function () {
  "use strict";
  function name() {
    document.querySelectorAll(".swagger-ui button:not([aria-label])").forEach(function (button) {
      if (button.textContent.trim()) return;
      var label = button.classList.contains("copy-to-clipboard") ? "Copy to the clipboard"
        : button.closest(".opblock-summary") ? "Show or hide this endpoint"
        : button.classList.contains("model-box-control") ? "Show or hide this schema" : "Show or hide";
      button.setAttribute("aria-label", label);
    });
    document.querySelectorAll(".swagger-ui textarea:not([aria-label])").forEach(function (area) {
      area.setAttribute("aria-label", area.classList.contains("body-param__text") ? "Request body (JSON)" : "Value");
    });
    document.querySelectorAll(".swagger-ui select:not([aria-label])").forEach(function (select) {
      // A label that only wraps the select (the servers list) gives it no name.
      var id = select.id && document.querySelector('label[for="' + select.id + '"]');
      if (id && !id.contains(select)) return;
      select.setAttribute("aria-label", select.closest(".servers") ? "Server"
        : select.closest(".content-type-wrapper, .body-param-content-type") ? "Content type" : "Choice");
    });
    document.querySelectorAll(".swagger-ui input:not([aria-label]):not([type=hidden])").forEach(function (input) {
      var row = input.closest("tr[data-param-name]");
      if (row && !(input.id && document.querySelector('label[for="' + input.id + '"]'))) {
        input.setAttribute("aria-label", row.getAttribute("data-param-name"));
      }
    });
  }
  new MutationObserver(name).observe(document.getElementById("swagger-ui"), { childList: true, subtree: true });
})();
