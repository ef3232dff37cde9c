/**
 * A live uPlot chart: rebuilt when its set of series changes (a new tier or model appears),
 * otherwise fed new data in place. The container's `data-points` (x positions with a value) and
 * `data-nonzero` (values above 0) say whether the chart shows anything.
 */
import uPlot from 'uplot';

export interface SeriesSpec {
  label: string;
  values: Array<number | null>;
  /** A dashed line (e.g. a secondary measure). */
  dashed?: boolean;
  /** Draw each point (sparse measures such as quantiles, where a lone value has no line). */
  points?: boolean;
}

export interface ChartOptions {
  /** Formats y values (axis and legend). */
  format: (v: number) => string;
  height?: number;
  /** Fixed y range minimum (default 0). */
  min?: number;
}

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563', '#65a30d', '#9333ea'];

export class LiveChart {
  private plot: uPlot | undefined;
  private keys = '';
  private xRange: [number, number] | undefined;
  private hovered = false;
  private readonly observer: ResizeObserver;

  constructor(
    private readonly el: HTMLElement,
    private readonly opts: ChartOptions,
  ) {
    el.dataset['points'] = '0';
    el.dataset['nonzero'] = '0';
    this.observer = new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: this.opts.height ?? 180 }));
    this.observer.observe(el);
    el.addEventListener('mouseenter', () => (this.hovered = true));
    el.addEventListener('mouseleave', () => (this.hovered = false));
  }

  private width(): number {
    return Math.max(200, this.el.clientWidth - 4);
  }

  /** `xRange`: the time span shown (epoch seconds), default the data's. */
  update(t: number[], series: SeriesSpec[], xRange?: [number, number]): void {
    this.xRange = xRange ?? (t.length > 1 ? [t[0]!, t[t.length - 1]!] : undefined);
    const keys = series.map((s) => s.label).join('\u0000');
    const data = [t, ...series.map((s) => s.values)] as uPlot.AlignedData;
    if (!this.plot || keys !== this.keys) {
      this.plot?.destroy();
      this.keys = keys;
      const fmt = this.opts.format;
      this.plot = new uPlot(
        {
          width: this.width(),
          height: this.opts.height ?? 180,
          scales: { x: { time: true, range: (_u, min, max) => this.xRange ?? [min, max] }, y: { range: (_u, _min, max) => [this.opts.min ?? 0, max > 0 ? max * 1.1 : 1] } },
          axes: [{}, { size: 80, values: (_u, vals) => vals.map((v) => fmt(v)) }],
          series: [
            {},
            ...series.map((s, i) => ({
              label: s.label,
              stroke: PALETTE[i % PALETTE.length]!,
              width: 2,
              spanGaps: true,
              ...(s.dashed ? { dash: [6, 4] } : {}),
              ...(s.points ? { points: { show: true, size: 5 } } : {}),
              value: (_u: uPlot, v: number | null) => (v === null ? '–' : fmt(v)),
            })),
          ],
        },
        data,
        this.el,
      );
    } else {
      this.plot.setData(data);
    }
    let points = 0;
    let nonzero = 0;
    let last: number | undefined;
    for (let i = 0; i < t.length; i++) {
      let any = false;
      for (const s of series) {
        const v = s.values[i];
        if (v === null || v === undefined) continue;
        any = true;
        if (v > 0) nonzero++;
      }
      if (any) {
        points++;
        last = i;
      }
    }
    // The legend shows the latest values unless the pointer is over the chart.
    // (after uPlot's own redraw, which it defers to a microtask)
    const plot = this.plot;
    if (last !== undefined) setTimeout(() => !this.hovered && plot === this.plot && plot.setLegend({ idx: last }), 0);
    this.el.dataset['points'] = String(points);
    this.el.dataset['nonzero'] = String(nonzero);
  }
}
