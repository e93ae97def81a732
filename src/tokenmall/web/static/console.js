// The dashboard's charts, drawn by ECharts from the rows the page embeds (#chart-data):
// the daily series the API serves.  No inline script, so the page's CSP forbids them all.
(function () {
  "use strict";
  function draw(id, type, name, dates, values) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var chart = echarts.init(el);
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      grid: { left: 60, right: 20, top: 20, bottom: 30 },
      xAxis: { type: "category", data: dates },
      yAxis: { type: "value", scale: type === "line" },
      series: [{ name: name, type: type, data: values, showSymbol: values.length < 2 }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("chart-data");
    if (!node || typeof echarts === "undefined") { return; }
    var d = JSON.parse(node.textContent);
    draw("chart-price", "line", d.labels.price, d.dates, d.price);
    draw("chart-pool", "line", d.labels.pool, d.dates, d.pool);
    draw("chart-dividends", "bar", d.labels.dividends, d.dates, d.dividends);
  });
})();
