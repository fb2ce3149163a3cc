// Files and values the flags point at, read before the model loads so that a bad one stops the start with a
// message naming the flag: the chat template, a default grammar or JSON schema, API keys from a file.
import { readFile } from 'node:fs/promises';
import { jsonSchemaToGrammar } from '../engine/index.ts';
import type { ServeConfig } from './config/index.ts';

export class InputError extends Error {}

export interface ServeInputs {
  chatTemplate: string | undefined;
  /** GBNF every request without a constraint of its own gets (--grammar, --grammar-file, --json-schema...). */
  grammar: string | undefined;
  apiKeys: string[];
}

async function readFlagFile(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read ${flag} ${path}: ${(err as Error).message}`);
  }
}

function parseSchema(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${flag} is not valid JSON: ${(err as Error).message}`);
  }
}

async function defaultGrammar(config: ServeConfig): Promise<string | undefined> {
  if (config.grammarFile !== undefined) return readFlagFile('--grammar-file', config.grammarFile);
  if (config.grammar !== undefined) return config.grammar;
  let schema: unknown;
  if (config.jsonSchemaFile !== undefined)
    schema = parseSchema('--json-schema-file', await readFlagFile('--json-schema-file', config.jsonSchemaFile));
  else if (config.jsonSchema !== undefined) schema = parseSchema('--json-schema', config.jsonSchema);
  else return undefined;
  try {
    return await jsonSchemaToGrammar(schema);
  } catch (err) {
    throw new InputError(`--json-schema: ${(err as Error).message}`);
  }
}

export async function readServeInputs(config: ServeConfig): Promise<ServeInputs> {
  const chatTemplate =
    config.chatTemplateFile !== undefined
      ? await readFlagFile('--chat-template-file', config.chatTemplateFile)
      : config.chatTemplate;
  const apiKeys = [...config.apiKeys];
  if (config.apiKeyFile !== undefined) {
    // One key per line, as llama-server reads the file; blank lines are skipped.
    const text = await readFlagFile('--api-key-file', config.apiKeyFile);
    apiKeys.push(
      ...text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l !== ''),
    );
  }
  return { chatTemplate, grammar: await defaultGrammar(config), apiKeys };
}
