/* An import's page while its job runs: asks the page's progress URL every half second
   and moves the <progress> bar and the counts; once the import is read to the end the
   page is loaded again, to show the refused rows. Without JavaScript the page refreshes
   itself (a <meta refresh> inside <noscript>). No inline script: the CSP forbids it. */
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box || !window.fetch || box.getAttribute("data-finished") === "true") return;
  var url = box.getAttribute("data-progress-url");
  var bar = document.getElementById("import-bar");
  var count = document.getElementById("import-count");
  var POLL_MS = 500;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = String(value);
  }

  function show(state) {
    bar.max = Math.max(1, state.total);
    bar.value = state.done;
    bar.textContent = state.done + " of " + state.total;
    count.innerHTML = "";
    var done = document.createElement("strong");
    done.textContent = String(state.done);
    var total = document.createElement("strong");
    total.textContent = String(state.total);
    count.appendChild(done);
    count.appendChild(document.createTextNode(" of "));
    count.appendChild(total);
    count.appendChild(document.createTextNode(" rows"));
    text("count-imported", state.imported);
    text("count-duplicates", state.duplicates);
    text("count-rejected", state.rejected);
  }

  function poll() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (state) {
        show(state);
        if (state.finished) {
          window.location.reload();
          return;
        }
        window.setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        window.setTimeout(poll, POLL_MS * 4);
      });
  }

  window.setTimeout(poll, POLL_MS);
})();
