// A per-second time series chart (uPlot), resized with its container.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Line {
  label: string;
  color: string;
  values: number[];
}

interface ChartProps {
  title: string;
  /** Epoch seconds of the first value; one value per second. */
  start: number;
  lines: Line[];
  testId: string;
}

export function SeriesChart({ title, start, lines, testId }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = (): uPlot.AlignedData => {
    const n = lines[0]?.values.length ?? 0;
    const x = Array.from({ length: n }, (_, i) => start + i);
    return [x, ...lines.map((l) => l.values)];
  };

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      // Labels only: values under the cursor would flicker as frames arrive.
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{ stroke: 'currentColor' }, { stroke: 'currentColor', size: 50 }],
      series: [
        {},
        ...lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: 1.5,
          fill: `${l.color}22`,
          points: { show: false },
        })),
      ],
    };
    plot.current = new uPlot(opts, data(), el);
    const resize = new ResizeObserver(() =>
      plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 180 }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The chart is made once; new data goes through setData below.
  }, []);

  useEffect(() => {
    plot.current?.setData(data());
  });

  return (
    <div class="card chart" data-testid={testId}>
      <h3>{title}</h3>
      <div ref={box} />
    </div>
  );
}
