// llama-server's server params, chat: the template (Jinja or not, from the model or a file), its kwargs, reasoning.
import type { FlagSpec } from '../../flags/parse.ts';
import { SERVER } from './groups.ts';
import type { ServeFlagKey } from './serve-config.ts';

export const SERVER_CHAT_FLAGS: readonly FlagSpec<ServeFlagKey>[] = [
  {
    names: ['--jinja'],
    negated: ['--no-jinja'],
    env: 'LLAMA_ARG_JINJA',
    kind: 'bool',
    key: 'jinja',
    group: SERVER,
    help: "render chat templates with llama.cpp's Jinja engine (default on); --no-jinja: its legacy renderer, no tools",
  },
  {
    names: ['--chat-template'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE',
    kind: 'string',
    key: 'chatTemplate',
    value: 'TEMPLATE',
    group: SERVER,
    help: "a Jinja chat template, or a built-in name (chatml, llama3, gemma, ...) (default: the model's)",
  },
  {
    names: ['--chat-template-file'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE_FILE',
    kind: 'string',
    key: 'chatTemplateFile',
    value: 'FNAME',
    group: SERVER,
    help: 'a file holding a Jinja chat template',
  },
  {
    names: ['--chat-template-kwargs'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE_KWARGS',
    kind: 'string',
    key: 'chatTemplateKwargs',
    value: 'JSON',
    group: SERVER,
    help: 'template variables for every request, e.g. \'{"enable_thinking":false}\'',
    parse: (v) => {
      const kwargs: unknown = JSON.parse(String(v));
      if (typeof kwargs !== 'object' || kwargs === null || Array.isArray(kwargs))
        throw new Error('must be a JSON object');
      return String(v);
    },
  },
  {
    names: ['--reasoning-format'],
    env: 'LLAMA_ARG_THINK',
    kind: 'enum',
    key: 'reasoningFormat',
    choices: ['none', 'deepseek', 'deepseek-legacy', 'auto'],
    group: SERVER,
    help: 'where thoughts go: none (content) | deepseek (reasoning_content) | deepseek-legacy | auto (default deepseek)',
  },
  {
    names: ['-rea', '--reasoning'],
    env: 'LLAMA_ARG_REASONING',
    kind: 'enum',
    key: 'reasoning',
    choices: ['on', 'off', 'auto'],
    group: SERVER,
    help: 'thinking on templates that support it (default auto)',
  },
  {
    names: ['--reasoning-effort'],
    env: 'LLAMA_ARG_REASONING_EFFORT',
    kind: 'string',
    key: 'reasoningEffort',
    group: SERVER,
    help: 'reasoning_effort for templates that take one',
  },
  {
    names: ['--reasoning-budget', '--reasoning-budget-message'],
    env: 'LLAMA_ARG_THINK_BUDGET',
    kind: 'string',
    group: SERVER,
    help: 'thinking budget',
    parse: (v) => {
      if (v !== '-1')
        throw new Error(
          'a server-wide thinking budget is not offered (only -1); a request sets reasoning_budget_tokens',
        );
      return v;
    },
    ignored: 'thinking is unlimited unless a request sets reasoning_budget_tokens',
  },
  {
    names: ['--reasoning-preserve'],
    negated: ['--no-reasoning-preserve'],
    env: 'LLAMA_ARG_REASONING_PRESERVE',
    kind: 'bool',
    key: 'reasoningPreserve',
    group: SERVER,
    help: 'keep past reasoning in the history for templates that can (their preserve_reasoning variable; default on, as llama-server; --chat-template-kwargs may set it too)',
  },
  {
    names: ['--prefill-assistant'],
    negated: ['--no-prefill-assistant'],
    env: 'LLAMA_ARG_PREFILL_ASSISTANT',
    kind: 'bool',
    key: 'prefillAssistant',
    group: SERVER,
    help: 'a conversation ending with the assistant is continued (default on)',
  },
  {
    names: ['--skip-chat-parsing', '--no-skip-chat-parsing'],
    env: 'LLAMA_ARG_SKIP_CHAT_PARSING',
    kind: 'bool',
    group: SERVER,
    help: 'leave tool calls and reasoning in the text',
    refused: 'the output is always parsed (use reasoning_format none to keep thoughts in content)',
  },
];
