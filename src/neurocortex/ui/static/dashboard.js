// Draws the dashboard's charts (Chart.js) from the figures the server put in #dashboard-data.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue("--" + name).trim();
  const statusColours = { Success: colour("safe"), Failure: colour("malicious"), InProgress: colour("suspicious"), Waiting: "#8a96a3" };
  const levelColours = { info: colour("info"), safe: colour("safe"), suspicious: colour("suspicious"), malicious: colour("malicious"), none: "#c3cad3" };
  const common = { responsive: true, maintainAspectRatio: false, animation: false };

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (canvas) new Chart(canvas, Object.assign({}, config, { options: Object.assign({}, common, config.options) }));
  }
  draw("chart-timeline", {
    type: "bar",
    data: { labels: data.days, datasets: Object.entries(data.series).map(([status, values]) => (
      { label: status, data: values, backgroundColor: statusColours[status] })) },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
  draw("chart-verdicts", {
    type: "doughnut",
    data: { labels: Object.keys(data.verdicts), datasets: [{ data: Object.values(data.verdicts),
      backgroundColor: Object.keys(data.verdicts).map((level) => levelColours[level]) }] },
  });
  draw("chart-cache", {
    type: "doughnut",
    data: { labels: ["from the cache", "new jobs"], datasets: [{ data: [data.cache.hits, data.cache.jobs],
      backgroundColor: [colour("safe"), colour("accent")] }] },
  });
  const horizontal = (rows, label) => ({
    type: "bar",
    data: { labels: rows.map((r) => r[0]), datasets: [{ label: label, data: rows.map((r) => r[1]), backgroundColor: colour("accent") }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } },
  });
  draw("chart-analyzers", horizontal(data.analyzers, "jobs"));
  draw("chart-datatypes", horizontal(data.dataTypes, "jobs"));
  draw("chart-queue", {
    type: "bar",
    data: { labels: data.queue.map((q) => q[0]), datasets: [
      { label: "Waiting", data: data.queue.map((q) => q[1]), backgroundColor: statusColours.Waiting },
      { label: "Running", data: data.queue.map((q) => q[2]), backgroundColor: statusColours.InProgress }] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
})();
