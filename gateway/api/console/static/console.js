// The overview refreshes itself every 30 seconds while its checkbox is ticked (WCAG 2.2.1: the
// user can turn it off). Without JavaScript the page has an "Uppdatera" link instead.
(function () {
  "use strict";
  var box = document.getElementById("auto-refresh");
  if (!box) { return; }
  box.parentElement.hidden = false;
  try { box.checked = window.localStorage.getItem("console.autoRefresh") !== "off"; } catch (e) { /* private mode */ }
  box.addEventListener("change", function () {
    try { window.localStorage.setItem("console.autoRefresh", box.checked ? "on" : "off"); } catch (e) { /* ignore */ }
  });
  window.setInterval(function () {
    if (box.checked && !document.hidden) { window.location.reload(); }
  }, 30000);
}());
