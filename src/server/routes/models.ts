// GET /v1/models (and /models): the one served model under its aliases, with llama-server's `meta` (n_ctx is the
// context of one slot).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerDeps } from '../deps.ts';
import { ModelList } from '../responses.ts';

export const modelRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps }) => {
  const { config, model } = deps;
  const list = async (): Promise<ModelList> => ({
    object: 'list',
    data: [
      {
        id: config.modelId,
        object: 'model',
        created: config.modelCreated,
        owned_by: config.ownedBy,
        aliases: [...config.aliases],
        tags: [...config.tags],
        meta: {
          n_ctx: config.ctxPerSlot,
          n_ctx_train: model.info.nCtxTrain,
          n_params: model.info.nParams,
          size: model.info.sizeBytes,
          n_vocab: model.info.nVocab,
          n_slots: config.slots,
        },
      },
    ],
  });
  for (const url of ['/v1/models', '/models'])
    app.get(url, { schema: { response: { 200: ModelList } }, config: { idle: true } }, list);
};
