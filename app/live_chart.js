// The browser side of app/live_chart.py: one Plotly chart per component instance, given each new figure through
// Plotly.react, which updates the drawing in place instead of drawing a new chart from nothing. The page's charts
// draw in turn, a frame apart (`inTurn`).

function loadPlotly(url) {
  // Once per page, shared by every chart.
  if (!window.initLabPlotly) {
    window.initLabPlotly = new Promise(function (resolve, reject) {
      const script = document.createElement("script");
      script.src = url;
      script.onload = function () { resolve(window.Plotly); };
      script.onerror = function () { window.initLabPlotly = null; reject(new Error("could not load " + url)); };
      document.head.appendChild(script);
    });
  }
  return window.initLabPlotly;
}

function chartIn(parent, Plotly) {
  let chart = parent.querySelector("div.initlab-live-chart");
  if (!chart) {
    chart = document.createElement("div");
    chart.className = "initlab-live-chart";
    parent.appendChild(chart);
    // Follow the column's width (the page's layout can change it after the first drawing).
    new ResizeObserver(function () {
      if (chart.data && chart.clientWidth > 0 && chart.layout.width !== chart.clientWidth) {
        Plotly.relayout(chart, {width: chart.clientWidth});
      }
    }).observe(chart);
  }
  return chart;
}

function nextFrame() {
  return new Promise(function (resolve) { requestAnimationFrame(function () { setTimeout(resolve, 0); }); });
}

function inTurn(draw) {
  // One drawing at a time across the page, and a frame between two: the first screen shows its first chart as soon
  // as that one is drawn, where five charts drawn in one task all appeared together, 0.5-0.7 s later. The order is
  // the figures' own (a heatmap's drawing finishes asynchronously, so a chart's next figure waits for it).
  window.initLabDrawing = (window.initLabDrawing || Promise.resolve()).then(draw)
    .catch(function (error) { console.error(error); })  // a failed drawing must not stop the next ones
    .then(nextFrame);
}

export default function (component) {
  const {data, parentElement} = component;
  const url = new URL(data.plotly, document.baseURI).href;
  if (data.figure === undefined) {  // load_plotly's element: plotly.js loaded and evaluated ahead of the charts
    loadPlotly(url).catch(function () {});  // a failed load is forgotten: the first chart asks again
    return;
  }
  const figure = JSON.parse(data.figure);
  const height = figure.layout.height || 450;
  parentElement.style.minHeight = height + "px";  // the chart's place is kept while plotly.js loads
  parentElement.initLabLatest = figure;
  loadPlotly(url).then(function (Plotly) {
    const chart = chartIn(parentElement, Plotly);
    inTurn(function () {
      // A figure that a newer one replaced before its turn came (a hidden tab draws nothing) is not drawn.
      if (parentElement.initLabLatest !== figure) return;
      const layout = Object.assign({}, figure.layout, {height: height});
      if (chart.clientWidth > 0) layout.width = chart.clientWidth;
      return Plotly.react(chart, figure.data || [], layout, data.config);
    });
  });
}
