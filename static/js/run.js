/* The run page: live updates morph in place (htmx + idiomorph), timers tick between updates, and Cancel
   answers at once. Everything here is an enhancement: without it the page still refreshes and posts. */
(function () {
  "use strict";

  // A <details> the reader opened stays open whatever the next update says.
  if (window.Idiomorph) {
    window.Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (name, node) {
      return !(name === "open" && node.tagName === "DETAILS");
    };
  }

  function duration(seconds) {
    var minutes = Math.floor(seconds / 60), rest = seconds % 60;
    return minutes ? minutes + " min " + String(rest).padStart(2, "0") + " s" : rest + " s";
  }

  // Elapsed times: the server sends the value at each update; between updates they count on here.
  var bases = new WeakMap();
  setInterval(function () {
    document.querySelectorAll("[data-elapsed]").forEach(function (el) {
      var base = Number(el.getAttribute("data-elapsed")), seen = bases.get(el);
      if (!seen || seen.base !== base) {
        seen = { base: base, at: Date.now() };
        bases.set(el, seen);
      }
      el.textContent = duration(base + Math.floor((Date.now() - seen.at) / 1000));
    });
  }, 1000);

  // Live updates: the run's event stream says when something changed, and htmx then fetches the live part
  // (so focus, announcements and morphing are those of the polled page). Polling goes on until the first
  // event arrives and again whenever the stream is down: a proxy that buffers the stream changes nothing.
  var body = document.getElementById("run-body");
  var url = body && body.getAttribute("data-events");
  if (url && window.EventSource && window.htmx) {
    var source = new EventSource(url), pending = false;
    var changed = function () {
      window.runStreaming = true;
      if (pending) return;
      pending = true; // one fetch for a burst of events
      setTimeout(function () {
        pending = false;
        var live = document.getElementById("run-body");
        if (live && live.hasAttribute("hx-get")) window.htmx.trigger(live, "run-changed");
      }, 300);
    };
    source.addEventListener("status", changed);
    source.addEventListener("output", changed);
    source.addEventListener("end", function () { source.close(); changed(); });
    source.onerror = function () { window.runStreaming = false; }; // it reconnects by itself (Last-Event-ID)
  }

  // Cancel: say so and disable the button at once; focus moves to the status heading, not to nowhere.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-cancel")) return;
    var button = form.querySelector("button");
    button.textContent = "Cancelling…";
    setTimeout(function () {
      button.disabled = true;
      var heading = document.getElementById("status-title");
      if (heading) heading.focus();
    }, 0);
  });
})();
