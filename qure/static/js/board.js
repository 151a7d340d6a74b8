/* The waiting-room board: polls a small JSON document every few seconds (304 when nothing
   changed), draws one column per doctor, and highlights, chimes and (when enabled)
   announces a newly called token. No framework, no inline script (the CSP forbids it). */
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-url");
  var pollMs = Math.max(1, Number(body.getAttribute("data-poll")) || 2) * 1000;
  var columns = document.getElementById("columns");
  var statusLine = document.getElementById("status");
  var soundButton = document.getElementById("sound");
  var speechButton = document.getElementById("speech");
  var etag = null;
  var serving = null; // doctor id -> token number now serving, after the first draw
  var flashUntil = {}; // doctor id -> time until which the column stays highlighted
  var audio = null;
  var sound = window.localStorage.getItem("qure.board.sound") === "1";
  var speech = window.localStorage.getItem("qure.board.speech") === "1";

  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined && text !== null) el.textContent = String(text);
    return el;
  }

  function showToggles() {
    soundButton.textContent = sound ? "Sound on" : "Sound off";
    soundButton.setAttribute("aria-pressed", sound ? "true" : "false");
    speechButton.textContent = speech ? "Announcements on" : "Announcements off";
    speechButton.setAttribute("aria-pressed", speech ? "true" : "false");
  }

  function chime() {
    if (!sound) return;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [660, 880].forEach(function (freq, i) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        var start = audio.currentTime + i * 0.35;
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, start);
        gain.gain.exponentialRampToValueAtTime(0.4, start + 0.03);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.6);
        osc.connect(gain).connect(audio.destination);
        osc.start(start);
        osc.stop(start + 0.65);
      });
    } catch (e) {
      /* no audio device: the highlight is still there */
    }
  }

  function announce(token, doctorName) {
    if (!speech || !window.speechSynthesis) return;
    var words = "Token " + token.token_number + ", " + doctorName;
    window.speechSynthesis.speak(new window.SpeechSynthesisUtterance(words));
  }

  function tokenCard(token, className) {
    var card = node("div", className);
    card.appendChild(node("span", "token", token.display));
    card.appendChild(node("span", "initials", token.initials));
    if (token.urgent) card.appendChild(node("span", "urgent", "urgent"));
    return card;
  }

  function draw(data) {
    var now = Date.now();
    var next = {};
    var called = [];
    columns.textContent = "";
    if (!data.doctors.length) {
      columns.appendChild(node("p", "waiting-msg", "No doctor on duty yet."));
    }
    data.doctors.forEach(function (column) {
      var id = String(column.doctor.id);
      var current = column.now_serving;
      next[id] = current ? current.token_number : null;
      if (serving && current && serving[id] !== current.token_number) {
        flashUntil[id] = now + 12000;
        called.push([current, column.doctor.name]);
      }
      var section = node("section", "doctor");
      section.setAttribute("data-doctor-id", id);
      if (flashUntil[id] && flashUntil[id] > now) section.className += " called";
      section.appendChild(node("h2", null, column.doctor.name));
      var nowBox = node("div", "now");
      nowBox.appendChild(node("p", "label", "Now serving"));
      nowBox.appendChild(current ? tokenCard(current, "current") : node("p", "idle", "—"));
      section.appendChild(nowBox);
      var list = node("div", "next");
      list.appendChild(node("p", "label", "Next"));
      if (!column.next.length) list.appendChild(node("p", "idle", "Nobody waiting"));
      column.next.forEach(function (token) {
        list.appendChild(tokenCard(token, "upcoming"));
      });
      section.appendChild(list);
      columns.appendChild(section);
    });
    serving = next;
    if (called.length) chime();
    called.forEach(function (pair) {
      announce(pair[0], pair[1]);
    });
  }

  function refresh() {
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(url, { headers: headers, cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload();
          return null;
        }
        if (response.status === 304) return null;
        if (!response.ok) throw new Error("status " + response.status);
        etag = response.headers.get("ETag");
        return response.json();
      })
      .then(function (data) {
        if (data) draw(data);
        statusLine.textContent = "";
        body.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () {
        statusLine.textContent = "Reconnecting…";
      })
      .then(function () {
        window.setTimeout(refresh, pollMs);
      });
  }

  function tick() {
    var clock = document.getElementById("clock");
    clock.textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  soundButton.addEventListener("click", function () {
    sound = !sound;
    window.localStorage.setItem("qure.board.sound", sound ? "1" : "0");
    showToggles();
    chime();
  });
  speechButton.addEventListener("click", function () {
    speech = !speech;
    window.localStorage.setItem("qure.board.speech", speech ? "1" : "0");
    showToggles();
  });
  showToggles();
  tick();
  window.setInterval(tick, 15000);
  refresh();
})();
