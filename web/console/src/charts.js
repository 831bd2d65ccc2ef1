// A small wrapper around Chart.js for the console's charts: bar and line charts over categories.
// Only the pieces used here are imported and registered, so the bundler leaves the rest of
// Chart.js out. Chart.js sizes its canvas through element.style (CSSOM), which the console's CSP
// (style-src 'self') allows; it injects no stylesheet.
import {
  Chart,
  BarController,
  LineController,
  BarElement,
  LineElement,
  PointElement,
  CategoryScale,
  LinearScale,
  Tooltip,
  Legend,
} from 'chart.js';

Chart.register(
  BarController,
  LineController,
  BarElement,
  LineElement,
  PointElement,
  CategoryScale,
  LinearScale,
  Tooltip,
  Legend,
);

// The console's look: system fonts, its text colour, no animation (charts appear drawn at once,
// which also spares people who prefer reduced motion).
Chart.defaults.font.family =
  "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
Chart.defaults.color = '#1b1f24';

// Series colours with at least 3:1 contrast against white (WCAG non-text contrast).
export const COLORS = ['#0b5cad', '#b85c00', '#1d6b35', '#7b3fa0', '#b3261e', '#36606e'];

function options(spec) {
  const format = spec.format || ((v) => String(v));
  const horizontal = !!spec.horizontal;
  const valueAxis = {
    stacked: !!spec.stacked,
    beginAtZero: true,
    ticks: { callback: (v) => format(v), precision: spec.integer ? 0 : undefined },
    grid: { color: '#e3e7ec' },
  };
  const categoryAxis = {
    stacked: !!spec.stacked,
    ticks: { autoSkip: true, maxRotation: 0 },
    grid: { display: false },
  };
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false, // the chart fills its box, whose height the page's CSS sets
    resizeDelay: 50,
    indexAxis: horizontal ? 'y' : 'x',
    interaction: { mode: 'index', intersect: false },
    scales: horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis },
    plugins: {
      legend: { display: spec.series.length > 1, position: 'bottom' },
      tooltip: {
        callbacks: {
          label: (ctx) => `${ctx.dataset.label}: ${format(horizontal ? ctx.parsed.x : ctx.parsed.y)}`,
        },
      },
    },
  };
}

function datasets(spec) {
  return spec.series.map((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    return {
      label: s.label,
      data: s.data,
      backgroundColor: color,
      borderColor: color,
      borderWidth: spec.kind === 'line' ? 2 : 0,
      pointRadius: spec.kind === 'line' ? 2 : undefined,
      maxBarThickness: 48,
    };
  });
}

// Draws a chart on `canvas`. spec: {kind: 'bar' | 'line', labels: [..], series: [{label, data,
// color?}], stacked?, horizontal?, integer? (whole-number ticks), format?: (value) => text}.
export function drawChart(canvas, spec) {
  return new Chart(canvas, {
    type: spec.kind || 'bar',
    data: { labels: spec.labels, datasets: datasets(spec) },
    options: options(spec),
  });
}

// Replaces a chart's data and options with those of a new spec (same kind) and redraws it.
export function updateChart(chart, spec) {
  chart.data.labels = spec.labels;
  chart.data.datasets = datasets(spec);
  chart.options = options(spec);
  chart.update('none');
}
