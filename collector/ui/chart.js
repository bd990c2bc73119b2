// Samples over time with uPlot: a full chart whose brushed range narrows the
// view, and the home page's sparklines.
import { getJson } from './api.js';

export async function series(q) {
  const s = await getJson('/api/v1/series', q);
  const data = [s.points.map((p) => p.unix_seconds), s.points.map((p) => p.total)];
  data.range = [Date.parse(s.from) / 1000, Date.parse(s.to) / 1000];
  return data;
}

// onBrush(fromUnixSeconds, toUnixSeconds) is called when a range is dragged.
export function timeChart(el, data, onBrush) {
  el.innerHTML = '';
  const opts = {
    width: Math.max(300, el.clientWidth || 960),
    height: 140,
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true, range: () => data.range } },
    select: { show: true },
    legend: { show: false },
    series: [{}, { label: 'samples', stroke: '#d9480f', fill: 'rgba(217,72,15,0.15)', width: 1.5 }],
    axes: [{}, { size: 50 }],
    hooks: {
      setSelect: [(u) => {
        if (u.select.width < 3) return;
        const from = u.posToVal(u.select.left, 'x');
        const to = u.posToVal(u.select.left + u.select.width, 'x');
        u.setSelect({ left: 0, width: 0 }, false);
        onBrush(Math.floor(from), Math.ceil(to));
      }],
    },
  };
  return new uPlot(opts, data, el);
}

export function sparkline(el, data) {
  el.innerHTML = '';
  return new uPlot({
    width: 180, height: 36, pxAlign: false,
    cursor: { show: false }, select: { show: false }, legend: { show: false },
    scales: { x: { time: true, range: () => data.range } },
    axes: [{ show: false }, { show: false }],
    series: [{}, { stroke: '#d9480f', fill: 'rgba(217,72,15,0.15)', width: 1 }],
  }, data, el);
}
