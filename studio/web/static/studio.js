// Progressive enhancements only: every page works without this file. The server renders
// every page and fragment; this script checks files before they are sent, adds drag and
// drop and an upload progress bar, searches the control picker as you type, filters the
// framework list, and moves focus to the error summary.
(function () {
  "use strict";

  function humanSize(size) {
    var units = [["GB", 1 << 30], ["MB", 1 << 20], ["KB", 1 << 10]];
    for (var i = 0; i < units.length; i++) {
      if (size >= units[i][1]) {
        var value = size / units[i][1];
        return (value >= 10 || value === Math.floor(value) ? value.toFixed(0) : value.toFixed(1)) + " " + units[i][0];
      }
    }
    return size + " bytes";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // -- one submission per form: a double click must not create two records ----------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) return;
    if (form.getAttribute("data-busy")) { event.preventDefault(); return; }
    form.setAttribute("data-busy", "1");
    form.setAttribute("aria-busy", "true");
  });

  // -- a rejection needs a comment; say so before the round trip ---------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[name=decision][value=rejected]");
    if (!button) return;
    var comment = button.form && button.form.elements.comment;
    if (!comment) return;
    comment.setCustomValidity(comment.value.trim() ? "" : "Tell the uploader what to fix.");
    if (!comment.reportValidity()) event.preventDefault();
  });
  document.addEventListener("input", function (event) {
    if (event.target.name === "comment") event.target.setCustomValidity("");
  });

  // -- the error summary takes focus; its links move focus to their field ------------------
  function focusSummary() {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("[data-error-summary] a[href^='#']");
    if (!link) return;
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (!target) return;
    event.preventDefault();
    var details = target.closest("details");
    if (details) details.open = true;
    var focusable = target.matches("input, select, textarea, button") ? target
      : target.querySelector("input:not([type=hidden]), select, textarea");
    target.scrollIntoView({ block: "center" });
    (focusable || target).focus({ preventScroll: true });
  });

  // -- file fields: checked before upload, listed, and filled by drag and drop -------------
  function rules(input) {
    return {
      maxBytes: Number(input.getAttribute("data-max-bytes")) || Infinity,
      maxFiles: Number(input.getAttribute("data-max-files")) || 1,
      accept: (input.getAttribute("accept") || "").toLowerCase().split(",").filter(Boolean)
    };
  }

  function chooseFiles(input, files) {
    var r = rules(input), ok = [], problems = [];
    files.forEach(function (file) {
      var dot = file.name.lastIndexOf(".");
      var ext = dot > 0 ? file.name.slice(dot).toLowerCase() : "";
      if (r.accept.length && r.accept.indexOf(ext) < 0) {
        problems.push(file.name + ": this kind of file is not accepted.");
      } else if (file.size === 0) {
        problems.push(file.name + ": the file is empty.");
      } else if (file.size > r.maxBytes) {
        problems.push(file.name + ": " + humanSize(file.size) + " is larger than the upload limit of " + humanSize(r.maxBytes) + ".");
      } else {
        ok.push(file);
      }
    });
    if (ok.length > r.maxFiles) {
      problems.push(r.maxFiles === 1 ? "Choose one file." : "Choose at most " + r.maxFiles + " files at once.");
      ok = ok.slice(0, r.maxFiles);
    }
    var transfer = new DataTransfer();
    ok.forEach(function (file) { transfer.items.add(file); });
    input.files = transfer.files;
    showFiles(input, problems);
  }

  function showFiles(input, problems) {
    var field = input.closest(".file-field");
    if (!field) return;
    var list = field.querySelector("[data-file-list]");
    var box = field.querySelector("[data-file-problems]");
    list.textContent = "";
    Array.prototype.forEach.call(input.files, function (file, index) {
      var item = element("li");
      item.appendChild(element("span", "file-list-name", file.name));
      item.appendChild(element("span", "muted small", humanSize(file.size)));
      var remove = element("button", "btn btn-ghost btn-sm", "Remove");
      remove.type = "button";
      remove.setAttribute("data-remove-file", String(index));
      remove.appendChild(element("span", "visually-hidden", " " + file.name));
      item.appendChild(remove);
      list.appendChild(item);
    });
    list.hidden = input.files.length === 0;
    if (problems) {
      box.textContent = "";
      problems.forEach(function (text) { box.appendChild(element("p", null, text)); });
    }
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.matches && input.matches("input[type=file][data-max-bytes]")) {
      chooseFiles(input, Array.prototype.slice.call(input.files));
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-remove-file]");
    if (!button) return;
    var input = button.closest(".file-field").querySelector("input[type=file]");
    var index = Number(button.getAttribute("data-remove-file"));
    var kept = Array.prototype.slice.call(input.files).filter(function (_, i) { return i !== index; });
    chooseFiles(input, kept);
    input.focus();
  });
  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var zone = event.target.closest && event.target.closest("[data-dropzone]");
      if (!zone) return;
      event.preventDefault();
      zone.classList.add("is-over");
    });
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("is-over");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("is-over");
    var input = zone.querySelector("input[type=file]");
    var dropped = Array.prototype.slice.call(event.dataTransfer.files);
    var before = input.multiple ? Array.prototype.slice.call(input.files) : [];
    chooseFiles(input, before.concat(dropped));
  });

  // -- upload forms: sent in the background with a progress bar ----------------------------
  // The server answers exactly as for the plain form: a redirect when it worked (followed
  // here), or the page again with the error summary (its main content replaces ours).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-upload") || !window.FormData || !window.XMLHttpRequest) return;
    event.preventDefault();
    if (form.getAttribute("data-busy")) return;
    form.setAttribute("data-busy", "1");
    form.setAttribute("aria-busy", "true");
    var box = form.querySelector("[data-progress]");
    var bar = box && box.querySelector("progress");
    var text = box && box.querySelector("[data-progress-text]");
    if (box) box.hidden = false;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable || !bar) return;
      var percent = Math.round(e.loaded * 100 / e.total);
      bar.value = percent;
      bar.textContent = percent + "%";
      text.textContent = percent + "% of " + humanSize(e.total) + (percent === 100 ? ", saving…" : "");
    });
    function failed(message) {
      form.removeAttribute("data-busy");
      form.removeAttribute("aria-busy");
      if (text) text.textContent = message;
    }
    xhr.addEventListener("load", function () {
      var landed = new URL(xhr.responseURL || form.action, window.location.href);
      if (xhr.status < 400 && landed.pathname !== new URL(form.action, window.location.href).pathname) {
        window.location.assign(landed.href);
        return;
      }
      var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var main = page.getElementById("main");
      if (!main) { failed("The upload failed (" + xhr.status + "). Please try again."); return; }
      document.getElementById("main").replaceWith(document.adoptNode(main));
      document.title = page.title;
      enhance(document);
      focusSummary();
    });
    xhr.addEventListener("error", function () {
      failed("The upload was interrupted. Check the connection and try again; nothing was saved.");
    });
    xhr.send(new FormData(form));
  });

  // -- the control picker: results as you type, picked controls kept in a list --------------
  var timers = new WeakMap();
  function search(input) {
    var picker = input.closest("[data-picker]");
    var results = picker.querySelector("[data-picker-results]");
    var q = input.value.trim();
    if (!q) { results.textContent = ""; return; }
    fetch(picker.getAttribute("data-source") + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (input.value.trim() !== q) return;  // a later search is on its way
        results.innerHTML = html;  // rendered and escaped by the server, from this origin
        var chosen = {};
        picker.querySelectorAll("[data-picker-chosen] input").forEach(function (box) { chosen[box.value] = true; });
        results.querySelectorAll("input[name=controls]").forEach(function (box) {
          if (chosen[box.value]) box.closest("li").remove();
        });
      });
  }
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("[data-picker-search] input[type=search]")) return;
    clearTimeout(timers.get(input));
    timers.set(input, setTimeout(function () { search(input); }, 180));
  });
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key !== "Enter" || !input.matches) return;
    if (input.matches("[data-picker-search] input[type=search]")) {
      event.preventDefault();  // Enter searches; it does not send the whole form
      clearTimeout(timers.get(input));
      search(input);
    } else if (input.matches("input[data-filter]")) {
      event.preventDefault();
    }
  });
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.matches || !box.matches("[data-picker] input[name=controls]")) return;
    var picker = box.closest("[data-picker]");
    var chosen = picker.querySelector("[data-picker-chosen]");
    var item = box.closest("li");
    if (box.checked && !chosen.contains(item)) {
      chosen.appendChild(item);
      box.focus();
    } else if (!box.checked && chosen.contains(item)) {
      item.remove();
      picker.querySelector("[data-picker-search] input").focus();
    }
  });

  // -- the framework list filters as you type ----------------------------------------------
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.matches || !input.matches("input[data-filter]")) return;
    var list = document.getElementById(input.getAttribute("data-filter"));
    if (!list) return;
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    list.querySelectorAll("[data-filter-item]").forEach(function (item) {
      var text = item.getAttribute("data-text").toLowerCase();
      var match = words.every(function (w) { return text.indexOf(w) >= 0; });
      item.hidden = !match && !item.querySelector("input:checked");
      if (!item.hidden) shown++;
    });
    var empty = list.querySelector("[data-filter-empty]");
    if (empty) empty.hidden = shown > 0;
  });

  function enhance(root) {
    root.querySelectorAll("[data-picker-search]").forEach(function (node) { node.hidden = false; });
    root.querySelectorAll("[data-filter-button]").forEach(function (node) { node.hidden = true; });
    root.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) { showFiles(input); });
  }
  enhance(document);
  focusSummary();
})();
