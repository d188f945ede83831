/* Every page: after a form error, focus starts at the error summary (its links lead to each field). */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (summary) summary.focus();
});
/* A "Copy" button copies its field (data-copy names the field's id) and says so in a live region. */
document.addEventListener("click", function (event) {
  "use strict";
  var button = event.target.closest ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  var said = document.getElementById(button.getAttribute("data-copy") + "-copied");
  if (!field) return;
  function done(ok) { if (said) said.textContent = ok ? "Copied." : "Select the token and copy it (Ctrl+C)."; }
  field.select();
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(document.execCommand("copy")); });
  } else {
    done(document.execCommand("copy"));
  }
});
