// Live progress of a run: its events as they come (server-sent events), then its result.
// Text is only ever set with textContent: nothing a task prints can become markup.
"use strict";
(function () {
  const table = document.getElementById("events");
  if (!table || table.dataset.status !== "running") return;
  const body = table.querySelector("tbody");
  const status = document.getElementById("run-status");
  const source = new EventSource(
    "/runs/" + table.dataset.run + "/events?since=" + table.dataset.count
  );
  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }
  function seconds(value) {
    return value === undefined || value === null ? "" : " " + value.toFixed(2) + " s";
  }
  source.onmessage = function (message) {
    const event = JSON.parse(message.data);
    const row = document.createElement("tr");
    row.className = event.event;
    cell(row, event.event);
    cell(row, event.task || "");
    cell(row, (event.detail || "") + seconds(event.seconds));
    body.appendChild(row);
  };
  source.addEventListener("end", function (message) {
    const summary = JSON.parse(message.data);
    status.textContent = summary.status;
    status.className = "status " + summary.status;
    table.dataset.status = summary.status;
    document.getElementById("cancel-form").hidden = true;
    if (summary.errors) {
      const errors = document.getElementById("errors");
      errors.textContent = summary.errors;
      errors.hidden = false;
    }
    source.close();
  });
})();
