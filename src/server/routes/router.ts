// Router mode's own routes, as llama-server's router answers them: GET /models and /v1/models (every model the
// server knows, with its status; ?reload=1 reads the models again), POST /models/load and /models/unload, and
// GET /props without ?model= (the router's own properties). Every other route serves the model its request names.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RoutedModelView, RouterControl } from '../deps.ts';
import { invalidRequest, notSupported } from '../errors.ts';

export interface RouterRouteOptions {
  router: RouterControl;
  buildInfo: string;
  ownedBy: string;
}

const ModelBody = Type.Object({ model: Type.Optional(Type.Unknown()) });

function modelOf(body: { model?: unknown }): string {
  const model = body.model;
  if (typeof model !== 'string' || model === '')
    throw invalidRequest("'model' must be a non-empty string naming a model", 'model', 'missing_required_parameter');
  return model;
}

export const routerRoutes: FastifyPluginAsyncTypebox<RouterRouteOptions> = async (app, { router, ownedBy }) => {
  const created = Math.floor(Date.now() / 1000);
  const entry = (m: RoutedModelView) => ({
    ...(m.meta !== undefined ? { meta: m.meta } : {}),
    id: m.id,
    object: 'model',
    owned_by: ownedBy,
    created,
    aliases: [...m.aliases],
    tags: [],
    ...(m.path !== undefined ? { path: m.path } : {}),
    source: m.source,
    status: {
      value: m.status,
      args: [...m.args],
      ...(m.status === 'failed' ? { failed: true, ...(m.error !== undefined ? { error: m.error } : {}) } : {}),
      ...(m.status !== 'failed' && m.error !== undefined ? { error: m.error } : {}),
    },
    architecture: { input_modalities: ['text'], output_modalities: ['text'] },
  });
  const querystring = Type.Object({ reload: Type.Optional(Type.String()) });
  const list = async (request: { query: { reload?: string | undefined } }) => {
    if (request.query.reload !== undefined && request.query.reload !== '') await router.reload();
    return { object: 'list', data: router.list().map(entry) };
  };
  for (const url of ['/models', '/v1/models'])
    app.get(url, { schema: { querystring }, config: { global: true } }, list);

  app.post('/models/load', { schema: { body: ModelBody }, config: { global: true } }, async (request) => {
    router.load(modelOf(request.body));
    return { success: true };
  });
  app.post('/models/unload', { schema: { body: ModelBody }, config: { global: true } }, async (request) => {
    // Answers at once; the listing shows it unloading until its running requests are done.
    const done = router.unload(modelOf(request.body));
    done.catch((err: unknown) => request.log.error({ err }, 'unload failed'));
    return { success: true };
  });
  // llama-server's router downloads to and deletes from its Hugging Face cache; this server never downloads.
  app.route({
    method: ['POST', 'DELETE'],
    url: '/models',
    config: { global: true },
    handler: async () => {
      throw notSupported(
        'downloading and deleting models is not supported by this server: put the .gguf in --models-dir (or name it in --models-preset) and GET /models?reload=1',
      );
    },
  });
};
