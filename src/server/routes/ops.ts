// Operations routes, as llama-server answers them: GET /health (open to all, for load balancers), GET /slots and
// POST /slots/{id}?action=save|restore|erase, GET|POST /props, GET /metrics. Optional ones answer 501 when off.
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ArgumentError, StateError } from '../../errors.ts';
import { type ServerDeps, servedBy } from '../deps.ts';
import { ApiError, invalidRequest, notSupported } from '../errors.ts';
import { PROPS_SETTINGS, settingsReport } from '../generation/parameters.ts';
import { setCasedHeader } from '../headers.ts';
import { DEFAULT_SAMPLERS } from '../samplers.ts';

export type ServerState = 'loading' | 'ok' | 'shutting_down';

export interface OpsOptions {
  deps: ServerDeps;
  state: () => ServerState;
  /** Prometheus exposition, when the server keeps metrics. */
  exposition?: () => Promise<{ contentType: string; body: string }>;
  /** Seconds since the epoch when the process started (llama-server's Process-Start-Time-Unix header). */
  startedAt: number;
  /** Router mode: GET /props without ?model= answers these (llama-server's router's own properties). */
  routerProps?: () => Record<string, unknown>;
  /** --sleep-idle-seconds: whether the model sleeps now (/props is_sleeping). */
  sleeping?: () => boolean;
}

/** llama-server's rule for slot file names: one plain name, no path, no dots at the ends. */
export function validSlotFilename(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    !/[/\\\0:*?"<>|]/.test(name) &&
    name !== '.' &&
    name !== '..' &&
    !name.startsWith('.') &&
    !name.endsWith('.') &&
    !name.endsWith(' ')
  );
}

export const opsRoutes: FastifyPluginAsyncTypebox<OpsOptions> = async (
  app,
  { deps: base, state, exposition, startedAt, routerProps, sleeping },
) => {
  const { config } = base;
  app.get('/health', { config: { public: true } }, async (_request, reply) => {
    const s = state();
    if (s === 'ok') return { status: 'ok' };
    // llama-server answers 503 with an error body while it loads.
    const message = s === 'loading' ? 'Loading model' : 'The server is shutting down';
    return reply.code(503).send({ error: { code: 503, message, type: 'unavailable_error' }, status: s });
  });
  app.get('/v1/health', { config: { public: true } }, async (_request, reply) =>
    reply.code(state() === 'ok' ? 200 : 503).send({ status: state() }),
  );

  app.get(
    '/slots',
    { schema: { querystring: Type.Object({ fail_on_no_slot: Type.Optional(Type.String()) }) } },
    async (request) => {
      const deps = servedBy(request, base);
      const { config } = deps;
      if (!config.endpoints.slots)
        throw notSupported('This server does not support the slots endpoint. Start it with `--slots`');
      const slots = deps.scheduler.snapshot();
      if (request.query.fail_on_no_slot !== undefined && !slots.some((s) => s.state === 'idle')) {
        throw new ApiError(503, 'unavailable_error', 'no slot available', { code: 'no_slot_available' });
      }
      // llama-server's fields first, then this server's (state, cachedTokens, request).
      return slots.map(({ id, ...ours }) => ({
        id,
        n_ctx: config.ctxPerSlot,
        speculative: config.speculative,
        is_processing: ours.state !== 'idle',
        ...(ours.request !== null
          ? {
              id_task: ours.request.id,
              n_prompt_tokens: ours.request.promptTokens,
              n_prompt_tokens_cache: ours.request.reusedTokens,
              next_token: [{ has_next_token: true, n_decoded: ours.request.generatedTokens }],
            }
          : {}),
        ...ours,
      }));
    },
  );

  const SlotAction = {
    params: Type.Object({ id: Type.Integer({ minimum: 0 }) }),
    querystring: Type.Object({ action: Type.Enum(['save', 'restore', 'erase']) }),
  };
  // A busy slot is a 409 (retry when it is idle); a file that can't be read back is the request's fault.
  const slotAction = (deps: ServerDeps, slot: number, action: 'save' | 'restore' | 'erase', path?: string) =>
    deps.scheduler.slotAction(slot, action, path).catch((err: unknown) => {
      const { config } = deps;
      if (err instanceof StateError)
        throw new ApiError(409, 'invalid_request_error', `Slot ${slot} is busy; retry when it is idle`, {
          code: 'slot_busy',
        });
      // The slot file's reader says what does not match (src/engine/slot-file.ts); the client sees its file name,
      // never the server's folder.
      if (err instanceof ArgumentError) {
        const folder = config.slotSavePath ?? '';
        const why = folder === '' ? err.message : err.message.split(folder).join('<slot-save-path>');
        throw invalidRequest(
          `Could not restore slot ${slot} from '${basename(path ?? '')}': ${why}`,
          'filename',
          'invalid_value',
        );
      }
      throw err;
    });
  app.post('/slots/:id', { schema: SlotAction }, async (request) => {
    const deps = servedBy(request, base);
    const { config } = deps;
    const dir = config.slotSavePath;
    if (dir === undefined)
      throw notSupported('This server does not support slot actions. Start it with `--slot-save-path`');
    const slot = request.params.id;
    if (slot >= config.slots)
      throw invalidRequest(`Invalid slot id ${slot} (slots 0..${config.slots - 1})`, 'id_slot', 'invalid_value');
    const { action } = request.query;
    if (action === 'erase') {
      const r = await slotAction(deps, slot, 'erase');
      return { id_slot: slot, n_erased: r.tokens };
    }
    const body = (request.body ?? {}) as { filename?: unknown };
    const filename = typeof body.filename === 'string' ? body.filename : '';
    if (!validSlotFilename(filename))
      throw invalidRequest('Invalid filename: a plain file name inside --slot-save-path', 'filename', 'invalid_value');
    const path = join(dir, filename);
    if (action === 'save') await mkdir(dir, { recursive: true });
    const r = await slotAction(deps, slot, action, path);
    return action === 'save'
      ? { id_slot: slot, filename, n_saved: r.tokens, n_written: r.bytes ?? 0, timings: { save_ms: r.ms } }
      : { id_slot: slot, filename, n_restored: r.tokens, n_read: r.tokens, timings: { restore_ms: r.ms } };
  });

  const props = (deps: ServerDeps) => {
    const { config } = deps;
    return {
      default_generation_settings: {
        n_ctx: config.ctxPerSlot,
        // The server's defaults (its flags), reported as llama-server's request fields.
        params: settingsReport(PROPS_SETTINGS, (name) => config.defaults[name as keyof typeof config.defaults], {
          samplers: config.defaults.samplers ?? [...DEFAULT_SAMPLERS],
        }),
      },
      total_slots: config.slots,
      model_alias: config.modelId,
      model_path: deps.model.info.path,
      modalities: { vision: false, video: false, audio: false },
      endpoint_slots: config.endpoints.slots,
      endpoint_props: config.endpoints.props,
      endpoint_metrics: config.endpoints.metrics,
      chat_template: deps.chat.info?.source ?? '',
      chat_template_caps: deps.chat.info?.caps ?? {},
      build_info: config.buildInfo,
      is_sleeping: sleeping?.() ?? false,
    };
  };
  app.get('/props', { config: { idle: true } }, async (request) =>
    routerProps !== undefined && request.servedBy === null
      ? { ...routerProps(), build_info: config.buildInfo }
      : props(servedBy(request, base)),
  );
  app.post('/props', async () => {
    if (!config.endpoints.props)
      throw notSupported('This server does not support changing global properties. Start it with `--props`');
    return { success: true };
  });

  app.get('/metrics', { config: { global: true } }, async (_request, reply) => {
    if (!config.endpoints.metrics || exposition === undefined)
      throw notSupported('This server does not support metrics endpoint. Start it with `--metrics`');
    const { contentType, body } = await exposition();
    setCasedHeader(reply, 'Process-Start-Time-Unix', String(startedAt));
    return reply.type(contentType).send(body);
  });
};
