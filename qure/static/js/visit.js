// The visit workspace, enhanced: what the doctor types is kept as a draft in this browser
// until it is saved, leaving the page with unsaved changes asks first, and the ICD-10 code
// field offers codes for the diagnosis typed. The page works without this file.
(function () {
  "use strict";
  var PREFIX = "qure.visit-draft.";
  var MAX_AGE_MS = 12 * 60 * 60 * 1000; // a draft is for this consultation, not tomorrow's

  function storage() {
    try {
      return window.localStorage;
    } catch (e) {
      return null; // storage refused (private mode, policy): no drafts
    }
  }

  var store = storage();
  var done = document.querySelector("[data-visit-done]");
  if (done && store) {
    store.removeItem(PREFIX + done.getAttribute("data-visit-done"));
  }
  var form = document.getElementById("visit-form");
  if (!form) {
    return;
  }
  var key = PREFIX + form.getAttribute("data-visit-id");
  var version = form.getAttribute("data-saved-version");
  var dirty = form.hasAttribute("data-unsaved");
  var leaving = false;

  function fields() {
    return Array.prototype.filter.call(form.elements, function (el) {
      return el.name && el.name !== "csrf_token" && el.type !== "submit" && el.type !== "hidden";
    });
  }

  function values() {
    var out = {};
    fields().forEach(function (el) {
      out[el.name] = el.value;
    });
    return out;
  }

  function saveDraft() {
    if (!store) {
      return;
    }
    try {
      store.setItem(key, JSON.stringify({ version: version, at: Date.now(), values: values() }));
    } catch (e) {
      // storage full: the beforeunload question still protects the typed work
    }
  }

  function readDraft() {
    if (!store) {
      return null;
    }
    try {
      return JSON.parse(store.getItem(key) || "null");
    } catch (e) {
      return null;
    }
  }

  function restore() {
    var draft = readDraft();
    // A draft counts only while the server holds what it was typed over: once anything is
    // saved (Save, Complete, another tab), the saved values are newer and win.
    if (!draft || draft.version !== version || Date.now() - draft.at > MAX_AGE_MS) {
      if (store) {
        store.removeItem(key);
      }
      return;
    }
    var changed = 0;
    fields().forEach(function (el) {
      var value = draft.values[el.name];
      if (typeof value === "string" && value !== el.value) {
        el.value = value;
        changed += 1;
      }
    });
    if (!changed && !dirty) {
      store.removeItem(key);
      return;
    }
    dirty = true;
    var note = form.querySelector(".draft-note");
    if (note && changed) {
      note.textContent =
        "Restored what you typed earlier on this computer. It is not saved yet: press Save.";
      note.hidden = false;
    }
  }

  function changedNow() {
    dirty = true;
    saveDraft();
  }

  // The form was sent from this page last time and came back without errors: it is
  // saved, whatever the draft holds (a save that changed nothing keeps the version).
  var sent = key + ".sent";
  try {
    if (window.sessionStorage.getItem(sent)) {
      window.sessionStorage.removeItem(sent);
      if (!dirty && store) {
        store.removeItem(key);
      }
    }
  } catch (e) {
    // no session storage: the version check below still drops stale drafts
  }
  restore();
  if (dirty) {
    saveDraft();
  }
  form.addEventListener("input", changedNow);
  form.addEventListener("change", changedNow);
  // The advice box sits in the prescription card; it belongs to the form by its id.
  document.querySelectorAll('[form="visit-form"]').forEach(function (el) {
    el.addEventListener("input", changedNow);
  });

  // Every form and link of the builder comes back to this workspace, where the draft is
  // restored: only leaving for another page asks.
  var here = "/visits/" + form.getAttribute("data-visit-id");
  document.addEventListener("submit", function (event) {
    leaving = true;
    if (event.target === form) {
      try {
        window.sessionStorage.setItem(sent, "1");
      } catch (e) {
        // no session storage: see above
      }
    }
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    var path = link ? link.pathname : "";
    if (path === here || path.indexOf(here + "/") === 0) {
      leaving = true;
    }
  });
  window.addEventListener("beforeunload", function (event) {
    if (dirty && !leaving) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  window.addEventListener("pageshow", function () {
    leaving = false; // back from the page cache
  });
  var builderNote = document.querySelector(".builder-note");
  if (builderNote && store) {
    builderNote.textContent =
      "What you type in the visit form is kept while you prescribe; press Save to record it.";
  }

  // ICD-10 suggestions: the code field's list follows the diagnosis (or the code) typed.
  var options = document.getElementById("icd10-options");
  var diagnosis = form.elements.diagnosis;
  var code = form.elements.icd10_code;
  var url = form.getAttribute("data-icd10-url");
  var timer = null;
  var asked = "";

  function suggest(text) {
    text = text.trim();
    if (!options || !url || text.length < 2 || text === asked) {
      return;
    }
    asked = text;
    fetch(url + "?q=" + encodeURIComponent(text), { headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : { items: [] };
      })
      .then(function (body) {
        if (text !== asked) {
          return; // an answer to an older question
        }
        options.textContent = "";
        body.items.forEach(function (item) {
          var option = document.createElement("option");
          option.value = item.code;
          option.textContent = item.code + " " + item.description;
          options.appendChild(option);
        });
      })
      .catch(function () {
        // offline or signed out: the server still checks the code on Save
      });
  }

  function later(source) {
    return function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        suggest(source.value);
      }, 250);
    };
  }

  if (diagnosis && code) {
    diagnosis.addEventListener("input", later(diagnosis));
    code.addEventListener("input", later(code));
    code.addEventListener("focus", function () {
      if (!code.value) {
        suggest(diagnosis.value);
      }
    });
  }
})();
