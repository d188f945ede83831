/* Every page: after a form error, focus starts at the error summary (its links lead to each field). */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var summary = document.querySelector("[data-error-summary]");
  if (summary) summary.focus();
});
