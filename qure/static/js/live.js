/* Staff pages that stay current (Today, Queue, My queue). The page names, on an element
   with data-live-url, where its changing regions come from; this script asks there every
   few seconds with the version the page shows (If-None-Match: 304 while nothing changed)
   and swaps in the new regions. A region, or a part of one, that holds the focus or text
   someone has typed is left as it is and swapped on a later poll, so nothing typed is
   lost. Without JavaScript the page's Refresh link does the same by hand. No inline
   script (the CSP forbids it), no framework. */
(function () {
  "use strict";
  var marker = document.querySelector("[data-live-url]");
  if (!marker || !window.fetch || !("content" in document.createElement("template"))) return;
  var url = marker.getAttribute("data-live-url");
  var etag = marker.getAttribute("data-live-etag");
  var pollMs = Math.max(1, Number(marker.getAttribute("data-live-poll")) || 3) * 1000;
  var statusLine = marker.querySelector("[data-live-status]");
  var stopped = false;

  function say(text) {
    if (statusLine) statusLine.textContent = text;
  }

  // Whether someone has typed or chosen something in `el` that a swap would throw away.
  function changed(el) {
    var fields = el.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.type === "hidden" || f.type === "submit" || f.type === "button") continue;
      if (f.tagName === "SELECT") {
        for (var j = 0; j < f.options.length; j++) {
          if (f.options[j].selected !== f.options[j].defaultSelected) return true;
        }
      } else if (f.type === "checkbox" || f.type === "radio") {
        if (f.checked !== f.defaultChecked) return true;
      } else if (f.value !== f.defaultValue) {
        return true;
      }
    }
    return false;
  }

  function busy(el) {
    var active = document.activeElement;
    return (active && active !== document.body && el.contains(active)) || changed(el);
  }

  // The ids of a region's parts (its children), or null unless every child has one.
  function partIds(el) {
    var ids = [];
    for (var i = 0; i < el.children.length; i++) {
      if (!el.children[i].id) return null;
      ids.push(el.children[i].id);
    }
    return ids.length ? ids.join(" ") : null;
  }

  // Put `fresh` in place of `old`, part by part when both have the same parts, so that
  // one busy part holds back only itself. False when something had to wait.
  function swapRegion(old, fresh) {
    var ids = partIds(fresh);
    if (ids && ids === partIds(old)) {
      var all = true;
      Array.prototype.slice.call(fresh.children).forEach(function (part) {
        var current = document.getElementById(part.id);
        if (!current) return;
        if (busy(current)) all = false;
        else current.replaceWith(part);
      });
      return all;
    }
    if (busy(old)) return false;
    old.replaceWith(fresh);
    return true;
  }

  function apply(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    var all = true;
    var regions = template.content.querySelectorAll("[data-live-region]");
    Array.prototype.forEach.call(regions, function (fresh) {
      var old = document.getElementById(fresh.id);
      if (old && !swapRegion(old, fresh)) all = false;
    });
    return all;
  }

  function poll() {
    if (stopped) return;
    if (document.hidden) {
      window.setTimeout(poll, pollMs);
      return;
    }
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(url, { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 403) {
          stopped = true;
          say("Sign in again to see changes.");
          return null;
        }
        if (response.status === 304) return null;
        if (!response.ok) throw new Error("status " + response.status);
        var tag = response.headers.get("ETag");
        return response.text().then(function (html) {
          return { tag: tag, html: html };
        });
      })
      .then(function (answer) {
        if (stopped) return;
        if (answer) {
          if (apply(answer.html)) {
            etag = answer.tag;
            say("Up to date.");
          } else {
            // The version stays old, so the next poll brings the held-back parts again.
            say("Some updates wait until you finish typing.");
          }
        } else {
          say("Up to date.");
        }
        marker.setAttribute("data-live-checked", String(Date.now()));
      })
      .catch(function () {
        say("Reconnecting…");
      })
      .then(function () {
        if (!stopped) window.setTimeout(poll, pollMs);
      });
  }

  say("Updates by itself.");
  window.setTimeout(poll, pollMs);
})();
