// What the server prints about itself: the startup summary (model, backend, slots, template...), --version and
// --list-devices, in llama-server's words where it has them.

import { basename } from 'node:path';
import type { ChatTemplateInfo, Device, ModelInfo } from '../engine/index.ts';
import type { ServeConfig } from './config/index.ts';

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Which chat template the server renders with, in words. */
export function templateName(
  info: ChatTemplateInfo,
  config: Pick<ServeConfig, 'chatTemplate' | 'chatTemplateFile'>,
): string {
  const engine = info.jinja ? 'Jinja' : 'legacy renderer';
  if (config.chatTemplateFile !== undefined) return `${config.chatTemplateFile} (${engine})`;
  if (config.chatTemplate !== undefined)
    return `${config.chatTemplate.length > 40 ? 'from --chat-template' : config.chatTemplate} (${engine})`;
  return info.fromModel ? `the model's (${engine})` : `chatml: the model has none (${engine})`;
}

export interface SummaryFacts {
  info: ModelInfo;
  devices: readonly Device[];
  llamaSystemInfo: string;
  ctxPerSlot: number;
  chat: ChatTemplateInfo;
  /** The loaded draft model (-md). */
  draft?: ModelInfo;
}

/** Speculative decoding in words: the types, the draft model (file, size), the draft limit and the policy. */
export function speculativeSummary(
  config: Pick<ServeConfig, 'specTypes' | 'draftMax' | 'specPolicy'>,
  draft: ModelInfo | undefined,
): Record<string, unknown> | 'off' {
  if (config.specTypes.length === 0) return 'off';
  return {
    types: config.specTypes.join(','),
    ...(draft !== undefined
      ? { draftModel: `${basename(draft.path)} (${(draft.sizeBytes / 1024 / 1024).toFixed(2)} MiB)` }
      : {}),
    nMax: config.draftMax,
    policy: config.specPolicy,
  };
}

export function startupSummary(config: ServeConfig, facts: SummaryFacts): Record<string, unknown> {
  const { info, chat } = facts;
  const gpus = facts.devices.filter((d) => d.type !== 'cpu');
  return {
    model: info.description,
    params: `${(info.nParams / 1e6).toFixed(2)} M`,
    weights: `${(info.sizeBytes / 1024 / 1024).toFixed(2)} MiB`,
    backend: gpus.length > 0 ? `${gpus[0]?.name} (GPU)` : 'CPU',
    devices: gpus.map((d) => ({
      name: d.description,
      computeCapability: d.computeCapability ?? 'unknown',
      vramTotal: mib(d.memoryTotalBytes),
      vramFree: mib(d.memoryFreeBytes),
    })),
    layersOffloaded: info.offloadedLayers >= 0 ? `${info.offloadedLayers}/${info.offloadableLayers}` : 'none (CPU)',
    cpu: facts.llamaSystemInfo.trim(),
    threads: config.threads,
    slots: config.parallel,
    ctxPerSlot: facts.ctxPerSlot,
    kv: `${config.kvTypeK}/${config.kvTypeV}${config.kvUnified !== false ? ', unified' : ''}`,
    batch: `${config.batchSize}/${config.ubatchSize}`,
    speculative: speculativeSummary(config, facts.draft),
    chatTemplate: templateName(chat, config),
    chatFormat: chat.exampleFormat,
    toolCallFormat: chat.toolsFormat,
    endpoints: [config.metrics ? '/metrics' : '', config.slots ? '/slots' : '', config.props ? 'POST /props' : '']
      .filter((e) => e !== '')
      .join(', '),
    rssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024),
  };
}

/** --list-devices, as llama-server prints it. */
export function devicesText(devices: readonly Device[]): string {
  const lines = ['Available devices:'];
  for (const d of devices) {
    if (d.type === 'cpu') continue;
    lines.push(`  ${d.name}: ${d.description} (${mib(d.memoryTotalBytes)}, ${mib(d.memoryFreeBytes)} free)`);
  }
  if (lines.length === 1) lines.push('  (none: the CPU only)');
  return `${lines.join('\n')}\n`;
}

/** --version: this server's version and the llama.cpp build it embeds. */
export function versionText(version: string, buildInfo: string, llamaSystemInfo: string): string {
  return `version: ${version} (llama.cpp ${buildInfo})\nsystem: ${llamaSystemInfo.trim()}\n`;
}
