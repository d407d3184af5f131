// Site navigation on every width. pydata-sphinx-theme 0.17.1 (pinned by sphinx-book-theme 1.3.0) attaches its sidebar
// listeners to the first `.primary-toggle` / `.secondary-toggle` only (pydata-sphinx-theme issue #2451), while
// sphinx-book-theme renders a second button of each kind, the one a reader sees in the article header. A click on any
// other button of the kind is handed to the first, which carries both themes' listeners: at 992 px and wider it shows or
// hides the sidebar in place, below that it opens the sidebar as a dialog.
document.addEventListener("DOMContentLoaded", () => {
  for (const kind of ["primary", "secondary"]) {
    const [first, ...others] = document.querySelectorAll(`.${kind}-toggle`);
    for (const button of others) {
      button.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();
        first.click();
      });
    }
  }
});

// The language switch leads to the same page in the other edition, in the same tab (the theme opens header links in
// a new one).
document.addEventListener("DOMContentLoaded", () => {
  for (const link of document.querySelectorAll("a.btn-language-switch")) link.removeAttribute("target");
});
