// Progress for long jobs (model generation, quantization, model loading). On a terminal: one redrawn line
// with a bar; in logs and CI: a plain line at each 10% step, so logs stay short and readable.

export interface Progress {
  /** `fraction` in [0, 1]; values outside are clamped. */
  update(fraction: number, detail?: string): void;
  done(detail?: string): void;
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
}

const BAR_WIDTH = 24;
const REDRAW_INTERVAL_MS = 100;

export function createProgress(label: string, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const started = performance.now();
  const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)}s`;
  let finished = false;

  if (stream.isTTY) {
    let lastDraw = -Infinity;
    const draw = (fraction: number, detail: string | undefined): void => {
      const filled = Math.round(fraction * BAR_WIDTH);
      const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
      const percent = `${Math.floor(fraction * 100)}`.padStart(3);
      let line = `${label} [${bar}] ${percent}% ${elapsed()}${detail ? ` ${detail}` : ''}`;
      const columns = stream.columns;
      if (columns && line.length >= columns) line = line.slice(0, columns - 1);
      stream.write(`\r\x1b[2K${line}`);
    };
    return {
      update(fraction, detail) {
        if (finished) return;
        const now = performance.now();
        if (now - lastDraw < REDRAW_INTERVAL_MS) return;
        lastDraw = now;
        draw(clamp(fraction), detail);
      },
      done(detail) {
        if (finished) return;
        finished = true;
        draw(1, detail);
        stream.write('\n');
      },
    };
  }

  let lastStep = -1;
  return {
    update(fraction, detail) {
      if (finished) return;
      const step = Math.floor(clamp(fraction) * 10);
      if (step <= lastStep || step >= 10) return; // 100% is reported by done()
      lastStep = step;
      stream.write(`${label}: ${step * 10}% (${elapsed()})${detail ? ` ${detail}` : ''}\n`);
    },
    done(detail) {
      if (finished) return;
      finished = true;
      stream.write(`${label}: done in ${elapsed()}${detail ? ` ${detail}` : ''}\n`);
    },
  };
}

function clamp(fraction: number): number {
  return Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
}
