// The app is built before the model exists so that it can answer /health (503) during the load; these stand in
// for the model, its chat layer and the scheduler until the load ends. Routes that need the model answer 503
// until the app is marked ready, so nothing reaches them early.
import type { ChatTemplates, Embedder, Model } from '../engine/index.ts';
import { LlamaError } from '../errors.ts';
import type { Decoder } from '../scheduler/decoder.ts';
import type { Scheduler } from '../scheduler/index.ts';
import type { ChatLayer } from '../server/chat/layer.ts';
import type { ServedEmbedder, ServedModel, ServedScheduler } from '../server/options.ts';

export class LateEngine {
  model: Model | undefined;
  chat: ChatTemplates | undefined;
  decoder: Decoder | undefined;
  scheduler: Scheduler | undefined;
  embedder: Embedder | undefined;
  readonly servedModel: ServedModel;
  readonly servedChat: ChatLayer;
  readonly servedScheduler: ServedScheduler;
  readonly servedEmbedder: ServedEmbedder;

  constructor(readonly path: string) {
    const engine = this;
    this.servedModel = {
      get info() {
        return (
          engine.model?.info ?? {
            path,
            name: '',
            nParams: 0,
            sizeBytes: 0,
            nCtxTrain: 0,
            nVocab: 0,
            bos: -1,
            eogTokens: [],
          }
        );
      },
      tokenize: (text, options) => this.#model().tokenize(text, options),
      detokenize: (tokens, options) => this.#model().detokenize(tokens, options),
      tokenBytes: (token, options) => this.#model().tokenBytes(token, options),
    };
    this.servedChat = {
      apply: (request) => this.#chat().apply(request),
      parser: (config) => this.#chat().parser(config),
      grammarFromSchema: (schema) => this.#chat().grammarFromSchema(schema),
      checkGrammar: (grammar) => this.#chat().checkGrammar(grammar),
      get supportsTools() {
        return engine.chat?.supportsTools ?? false;
      },
      get info() {
        return engine.chat?.info;
      },
    };
    this.servedScheduler = {
      submit: (request, handlers) => this.#scheduler().submit(request, handlers),
      snapshot: () => this.scheduler?.snapshot() ?? [],
      slotAction: (slot, action, file) => this.#scheduler().slotAction(slot, action, file),
    };
    this.servedEmbedder = {
      get info() {
        return engine.#embedder().info;
      },
      embed: (inputs) => this.#embedder().embed(inputs),
    };
  }

  #embedder(): Embedder {
    if (!this.embedder) throw new LlamaError('BUSY', 'the model is still loading');
    return this.embedder;
  }

  #model(): Model {
    if (!this.model) throw new LlamaError('BUSY', 'the model is still loading');
    return this.model;
  }

  #chat(): ChatTemplates {
    if (!this.chat) throw new LlamaError('BUSY', 'the model is still loading');
    return this.chat;
  }

  #scheduler(): Scheduler {
    if (!this.scheduler) throw new LlamaError('BUSY', 'the model is still loading');
    return this.scheduler;
  }
}
