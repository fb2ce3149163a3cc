// The live view: what the scheduler is doing now, from one frame a second on GET /v1/stats/stream.
// Connected only while shown; reconnects by itself when the stream drops. A router-mode server's frames list
// its models: the view then shows each model's state, and every loaded model's slots.
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ModelView, Percentiles, SlotView, StatsFrame } from '../../../src/server/stats-frame.ts';
import { ApiError, apiFetch, readEvents } from '../api.ts';
import { fmtBytes, fmtCount, fmtDuration, fmtMs, fmtRate } from '../format.ts';
import { SeriesChart } from './chart.tsx';

interface LiveViewProps {
  active: boolean;
  /** Changes when a new API key was entered: reconnect with it. */
  keyVersion: number;
  onUnauthorized(): void;
}

type Link = 'connecting' | 'live' | 'reconnecting' | 'unauthorized';

export function LiveView({ active, keyVersion, onUnauthorized }: LiveViewProps) {
  const [frame, setFrame] = useState<StatsFrame | null>(null);
  const [link, setLink] = useState<Link>('connecting');

  useEffect(() => {
    if (!active) return;
    const ac = new AbortController();
    let retry: ReturnType<typeof setTimeout> | undefined;
    const connect = async (): Promise<void> => {
      try {
        const res = await apiFetch('/v1/stats/stream', { signal: ac.signal });
        setLink('live');
        await readEvents(res, (data) => {
          if (data !== '[DONE]') setFrame(JSON.parse(data) as StatsFrame);
        });
      } catch (err) {
        if (ac.signal.aborted) return;
        if (err instanceof ApiError && err.unauthorized) {
          setLink('unauthorized');
          onUnauthorized();
          return;
        }
      }
      if (ac.signal.aborted) return;
      setLink('reconnecting');
      retry = setTimeout(() => void connect(), 2000);
    };
    setLink('connecting');
    void connect();
    return () => {
      ac.abort();
      clearTimeout(retry);
    };
  }, [active, keyVersion, onUnauthorized]);

  if (frame === null)
    return (
      <section class="live" data-testid="live" data-link={link}>
        <p class="empty">{link === 'unauthorized' ? 'The live view needs the API key.' : 'Connecting…'}</p>
      </section>
    );
  const { server, live, queue, kv } = frame;
  // The charts begin when the server did, not minutes of zeros before it.
  const skip = Math.max(0, Math.floor(server.startedAt / 1000) - live.series.start);
  const since = (values: number[]) => values.slice(skip);
  const chartStart = live.series.start + skip;
  const models = frame.models;
  // Router mode: every loaded model's slots, each row naming its model.
  const slotRows: Array<{ model: string | null; slot: SlotView }> =
    models === undefined
      ? frame.slots.map((slot) => ({ model: null, slot }))
      : models.flatMap((m) => m.slots.map((slot) => ({ model: m.id, slot })));
  const busy = slotRows.filter((r) => r.slot.state !== 'idle').length;
  const lastMinute = (values: number[]) => values.slice(-60).reduce((a, v) => a + v, 0);
  const cached = live.totals.promptTokensCached;
  const cacheShare = cached + live.totals.promptTokens > 0 ? cached / (cached + live.totals.promptTokens) : 0;

  return (
    <section class="live" data-testid="live" data-link={link}>
      <div class="tiles">
        <Tile label="generated tokens/s" value={fmtRate(live.now.generatedTokensPerSecond)} testId="tile-tps" />
        <Tile label="prompt tokens/s" value={fmtRate(live.now.promptTokensPerSecond)} />
        <Tile label="requests/s" value={fmtRate(live.now.requestsPerSecond)} />
        <Tile label="busy slots" value={`${busy} / ${slotRows.length}`} testId="tile-busy" />
        <Tile label="queued" value={String(queue.requests)} testId="tile-queue" />
        <Tile label="KV cells" value={`${pct(kv.cellsUsed, kv.cellsTotal)}`} />
        <Tile label="429s (last min)" value={String(lastMinute(live.series.rejected))} />
        <Tile label="cancelled (last min)" value={String(lastMinute(live.series.cancelled))} />
      </div>

      <div class="grid">
        {models !== undefined && <ModelsCard models={models} />}

        <div class="card wide">
          <h3>
            Slots <span class={`dot link-${link}`} title={link} /> <span class="muted">{link}</span>
          </h3>
          <table data-testid="slots">
            <thead>
              <tr>
                {models !== undefined && <th>model</th>}
                <th>slot</th>
                <th>state</th>
                <th>client</th>
                <th class="num">prompt</th>
                <th class="num">from cache</th>
                <th class="num">generated</th>
                <th class="num" title="speculative decoding: draft tokens accepted of those verified">
                  drafts
                </th>
                <th class="num">KV held</th>
                <th class="num">running</th>
              </tr>
            </thead>
            <tbody>
              {slotRows.map(({ model, slot: s }) => (
                <tr
                  key={`${model ?? ''}/${s.id}`}
                  data-testid="slot"
                  data-slot={s.id}
                  data-state={s.state}
                  data-model={model ?? undefined}
                >
                  {model !== null && <td>{model}</td>}
                  <td>{s.id}</td>
                  <td>
                    <span class={`state ${s.state}`}>{s.state}</span>
                  </td>
                  <td data-testid="slot-client">{s.request?.client ?? ''}</td>
                  <td class="num">{s.request?.promptTokens ?? ''}</td>
                  <td class="num">{s.request?.reusedTokens ?? ''}</td>
                  <td class="num">{s.request?.generatedTokens ?? ''}</td>
                  <td class="num" data-testid="slot-drafts">
                    {s.request && s.request.draftTokens > 0
                      ? `${s.request.draftAccepted}/${s.request.draftTokens}`
                      : ''}
                  </td>
                  <td class="num">{s.cachedTokens}</td>
                  <td class="num">{s.request ? fmtMs(s.request.runningMs) : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>

        <SeriesChart
          title="Tokens per second"
          testId="chart-tokens"
          start={chartStart}
          lines={[
            { label: 'generated', color: '#2563eb', values: since(live.series.generatedTokens) },
            { label: 'prompt', color: '#16a34a', values: since(live.series.promptTokens) },
          ]}
        />
        <SeriesChart
          title="Requests per second"
          testId="chart-requests"
          start={chartStart}
          lines={[
            { label: 'finished', color: '#7c3aed', values: since(live.series.requests) },
            { label: 'refused', color: '#dc2626', values: since(live.series.rejected) },
            { label: 'cancelled', color: '#d97706', values: since(live.series.cancelled) },
          ]}
        />

        <div class="card">
          <h3>
            Latency <span class="muted">last {live.latencySeconds} s</span>
          </h3>
          <table data-testid="latency">
            <thead>
              <tr>
                <th />
                <th class="num">p50</th>
                <th class="num">p90</th>
                <th class="num">p99</th>
                <th class="num">n</th>
              </tr>
            </thead>
            <tbody>
              <LatencyRow label="time to first token" p={live.latency.ttft} />
              <LatencyRow label="inter-token" p={live.latency.itl} />
              <LatencyRow label="end to end" p={live.latency.e2e} />
              <LatencyRow label="queue wait" p={live.latency.queue} />
            </tbody>
          </table>
        </div>

        <div class="card" data-testid="queue">
          <h3>
            Queue{' '}
            <span class="muted">
              {queue.requests} waiting, {queue.tokens} prompt tokens
            </span>
          </h3>
          {queue.clients.length === 0 ? (
            <p class="muted">No client has a request in.</p>
          ) : (
            <table>
              <thead>
                <tr>
                  <th>client</th>
                  <th class="num">running</th>
                  <th class="num">waiting</th>
                  <th>share of slots</th>
                </tr>
              </thead>
              <tbody>
                {queue.clients.map((c) => (
                  <tr key={c.client} data-testid="client">
                    <td>{c.client}</td>
                    <td class="num">{c.running}</td>
                    <td class="num">{c.waiting}</td>
                    <td>
                      <Bar used={c.running} total={slotRows.length} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>

        <div class="card">
          <h3>Memory</h3>
          <div class="row">
            KV pool: {fmtCount(kv.cellsUsed)} / {fmtCount(kv.cellsTotal)} cells
          </div>
          <Bar used={kv.cellsUsed} total={kv.cellsTotal} />
          {server.devices
            // The CPU device reports system RAM as free = total: not worth a bar.
            .filter((d) => d.type !== 'cpu' && d.memoryTotalBytes > 0)
            .map((d) => (
              <div key={d.name}>
                <div class="row">
                  {d.description || d.name} ({d.type}): {fmtBytes(d.memoryTotalBytes - d.memoryFreeBytes)} used of{' '}
                  {fmtBytes(d.memoryTotalBytes)}
                </div>
                <Bar used={d.memoryTotalBytes - d.memoryFreeBytes} total={d.memoryTotalBytes} />
              </div>
            ))}
        </div>

        <div class="card">
          <h3>Totals</h3>
          <dl>
            <dt>requests</dt>
            <dd>{fmtCount(live.totals.requests)}</dd>
            {Object.entries(live.totals.finish).map(([k, v]) => (
              <Fragment key={k}>
                <dt>· {k}</dt>
                <dd>{fmtCount(v)}</dd>
              </Fragment>
            ))}
            <dt>generated tokens</dt>
            <dd>{fmtCount(live.totals.generatedTokens)}</dd>
            <dt>prompt tokens (cache hits)</dt>
            <dd>
              {fmtCount(live.totals.promptTokens)} ({(cacheShare * 100).toFixed(0)}% from cache)
            </dd>
            <dt>refused</dt>
            <dd data-testid="refused">
              {Object.entries(live.totals.rejected)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ') || 'none'}
            </dd>
          </dl>
        </div>

        <div class="card" data-testid="server">
          <h3>Server</h3>
          <dl>
            {models === undefined ? (
              <>
                <dt>model</dt>
                <dd>{server.model}</dd>
                <dt>type</dt>
                <dd>
                  {server.description || '–'} · {(server.params / 1e6).toFixed(1)} M params ·{' '}
                  {fmtBytes(server.sizeBytes)}
                </dd>
                <dt>backend</dt>
                <dd data-testid="backend">
                  {server.backend}
                  {server.layersOffloaded !== null ? ` · ${server.layersOffloaded} layers on GPU` : ''}
                </dd>
              </>
            ) : (
              <>
                <dt>mode</dt>
                <dd>router</dd>
                <dt>models</dt>
                <dd>
                  {models.length} ({models.filter((m) => m.status === 'loaded').length} loaded)
                </dd>
              </>
            )}
            <dt>devices</dt>
            <dd>
              {server.devices
                .map((d) => `${d.description || d.name}${d.computeCapability ? ` (CC ${d.computeCapability})` : ''}`)
                .join(', ') || '–'}
            </dd>
            {models === undefined && (
              <>
                <dt>slots</dt>
                <dd>
                  {server.slots} × {server.ctxPerSlot} tokens
                </dd>
              </>
            )}
            <dt>state</dt>
            <dd>{frame.state}</dd>
            <dt>up</dt>
            <dd>{fmtDuration(frame.time - server.startedAt)}</dd>
          </dl>
        </div>
      </div>
    </section>
  );
}

/** Router mode: each model's status, its slots in use, its queue and the requests holding or awaiting it. */
function ModelsCard({ models }: { models: ModelView[] }) {
  return (
    <div class="card wide">
      <h3>
        Models{' '}
        <span class="muted">
          {models.filter((m) => m.status === 'loaded').length} of {models.length} loaded
        </span>
      </h3>
      <table data-testid="models">
        <thead>
          <tr>
            <th>model</th>
            <th>status</th>
            <th class="num">busy slots</th>
            <th class="num">queued</th>
            <th class="num">requests</th>
            <th class="num">context</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => {
            const busy = m.slots.filter((s) => s.state !== 'idle').length;
            const shown = m.slots.length > 0;
            return (
              <tr key={m.id} data-testid="model-row" data-model={m.id} data-status={m.status}>
                <td>{m.id}</td>
                <td>
                  <span class={`state model-${m.status}`}>{m.status}</span>
                </td>
                <td class="num" data-testid="model-busy">
                  {shown ? `${busy} / ${m.slots.length}` : '–'}
                </td>
                <td class="num" data-testid="model-queue">
                  {shown ? m.queue.requests : '–'}
                </td>
                <td class="num" data-testid="model-requests">
                  {m.requests}
                </td>
                <td class="num">{m.slotCount > 0 ? `${m.slotCount} × ${fmtCount(m.ctxPerSlot)}` : '–'}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Tile({ label, value, testId }: { label: string; value: string; testId?: string }) {
  return (
    <div class="tile" data-testid={testId}>
      <div class="value">{value}</div>
      <div class="label">{label}</div>
    </div>
  );
}

function LatencyRow({ label, p }: { label: string; p: Percentiles }) {
  return (
    <tr>
      <td>{label}</td>
      <td class="num">{fmtMs(p.p50)}</td>
      <td class="num">{fmtMs(p.p90)}</td>
      <td class="num">{fmtMs(p.p99)}</td>
      <td class="num">{p.count}</td>
    </tr>
  );
}

function Bar({ used, total }: { used: number; total: number }) {
  const share = total > 0 ? Math.min(1, used / total) : 0;
  return (
    <div class="bar" title={pct(used, total)}>
      <div style={{ width: `${(share * 100).toFixed(1)}%` }} />
    </div>
  );
}

function pct(used: number, total: number): string {
  return total > 0 ? `${((used / total) * 100).toFixed(1)}%` : '–';
}
