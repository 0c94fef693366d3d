// Progressive enhancement only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // Put the keyboard where the problem is.
  const invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) invalid.focus();

  // Blocked requests: typing a date means a custom range (presets ignore dates).
  const range = document.querySelector('#blocked-filter select[name="range"]');
  if (range) {
    document.querySelectorAll('#blocked-filter input[type="datetime-local"]').forEach((input) => {
      input.addEventListener("change", () => { range.value = "custom"; });
    });
  }

  // Lets the browser tests see that this file ran (under the page's CSP).
  document.documentElement.dataset.js = "ready";
});
