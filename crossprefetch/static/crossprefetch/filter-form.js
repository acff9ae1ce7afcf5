// The Filters dialog of crossprefetch's CrossDBFilterBackend in DRF's browsable API.
// An empty input is no filter: it is left out of the query string, which stays as short
// as a hand-written one.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("crossprefetch-filters")) {
      return;
    }
    Array.prototype.forEach.call(form.elements, function (input) {
      if (input.name && input.value === "") {
        input.disabled = true;
      }
    });
  });
  // Back on the page from the browser's cache: every input can be used again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form.crossprefetch-filters [disabled]").forEach(function (input) {
      input.disabled = false;
    });
  });
})();
