// Progressive enhancements only: every page works without this file.
(function () {
  "use strict";
  // One submission per form: a double click must not create two records.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-once")) return;
    if (form.getAttribute("data-busy")) { event.preventDefault(); return; }
    form.setAttribute("data-busy", "1");
    form.setAttribute("aria-busy", "true");
  });
  // A rejection needs a comment; say so before the round trip.
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
})();
