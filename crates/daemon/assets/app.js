// Lifeboat dashboard: copy buttons, and live progress of running jobs from /events
// (server-sent events). Pages work without it; it only adds.
"use strict";
(function () {
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var el = document.getElementById(b.dataset.copy);
      var text = el ? el.textContent : "";
      var label = b.textContent;
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = label; }, 2000); };
      var fallback = function () {
        var r = document.createRange(); r.selectNodeContents(el);
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      };
      if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, fallback); } else { fallback(); }
    });
  });

  var list = document.getElementById("running");
  if (!list || !window.EventSource) { return; }
  var empty = document.getElementById("running-empty");
  var only = list.dataset.source;
  var ended = false;
  var es = new EventSource("/events");
  var row = function (m) {
    var li = Array.prototype.find.call(list.children, function (x) { return x.dataset.job === m.job; });
    if (li) { return li; }
    li = document.createElement("li");
    li.dataset.job = m.job;
    var label = document.createElement("span"); label.className = "label";
    var bar = document.createElement("progress"); bar.max = 100;
    var detail = document.createElement("span"); detail.className = "detail";
    li.append(label, bar, detail);
    list.appendChild(li);
    if (empty) { empty.hidden = true; }
    return li;
  };
  es.onmessage = function (ev) {
    var m = JSON.parse(ev.data);
    if (m.type === "refreshed") { if (ended) { location.reload(); } return; }
    if (only && m.source !== only) { return; }
    var li = row(m);
    li.querySelector(".label").textContent = m.label;
    li.querySelector(".detail").textContent = m.text;
    var bar = li.querySelector("progress");
    bar.setAttribute("aria-label", "Progress of " + m.label);
    if (m.percent === null || m.percent === undefined) { bar.removeAttribute("value"); } else { bar.value = m.percent; }
    if (m.type === "finished") {
      li.classList.add(m.ok ? "done-ok" : "done-failed");
      bar.value = 100;
      ended = true;
      // The run history is re-read after a job: reload when that is done (or in 10 s).
      setTimeout(function () { location.reload(); }, 10000);
    }
  };
  window.addEventListener("beforeunload", function () { es.close(); });
})();
