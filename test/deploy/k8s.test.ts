// deploy/k8s: every manifest parses, the Deployment and Service pass Kubernetes' own schema
// (kubernetes-models), and the pieces agree with each other and with the server: labels and selectors,
// ports, probes on /health, the drain timing, the settings the server reads from its environment, and the
// Endpoint Picker's metric names, which must be names /metrics exports as gauges.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import t from 'tap';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseServeConfig, serveUsage } from '../../src/entry/config/index.ts';
import { ServerMetrics } from '../../src/metrics/server-metrics.ts';
import { projectRoot } from '../../src/paths.ts';
import { parseExposition } from '../metrics/helpers.ts';

const DIR = join(projectRoot, 'deploy', 'k8s');

// Plain shapes of what the tests read; the schema check is kubernetes-models' job.
interface Probe {
  httpGet?: { path?: string; port?: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
  timeoutSeconds?: number;
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
}
interface DeploymentDoc {
  kind: string;
  metadata: { name: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: { containers: Container[]; terminationGracePeriodSeconds?: number };
    };
  };
}
interface ServiceDoc {
  metadata: { name: string };
  spec: { selector: Record<string, string>; ports: Array<{ port: number; targetPort: string | number }> };
}
interface PoolDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    targetPorts: Array<{ number: number }>;
    appProtocol?: string;
    endpointPickerRef?: { name: string; port?: { number: number }; failureMode?: string; kind?: string };
  };
}
interface PluginSpec {
  type: string;
  name?: string;
  parameters?: Record<string, unknown>;
}
interface PickerConfig {
  apiVersion: string;
  kind: string;
  plugins: PluginSpec[];
  schedulingProfiles: Array<{ name: string; plugins: Array<{ pluginRef: string; weight?: number }> }>;
}
interface EngineConfig {
  name: string;
  queuedRequestsSpec: string;
  runningRequestsSpec: string;
  kvUsageSpec: string;
  cacheInfoSpec?: string;
}

/** Every document of a file, each checked to parse without error or warning. */
function load(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(join(DIR, file), 'utf8'));
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    if (doc.errors.length > 0 || doc.warnings.length > 0)
      throw new Error(`${file}: ${[...doc.errors, ...doc.warnings].map((e) => e.message).join('; ')}`);
  }
  return list.map((doc) => doc.toJS());
}

function one<T>(file: string): T {
  const docs = load(file);
  if (docs.length !== 1) throw new Error(`${file}: ${docs.length} documents, expected 1`);
  return docs[0] as T;
}

const deployment = one<DeploymentDoc>('deployment.yaml');
const service = one<ServiceDoc>('service.yaml');
const pool = one<PoolDoc>('inferencepool.yaml');
const values = one<{
  router: {
    modelServers: { matchLabels: Record<string, string>; targetPorts: Array<{ number: number }>; protocol: string };
    inferencePool: { failureMode: string };
    epp: { pluginsConfigFile: string; pluginsCustomConfig: Record<string, string> };
  };
}>('epp-values.yaml');
const kustomization = one<{ resources: string[]; images: Array<{ name: string }> }>('kustomization.yaml');
const container = deployment.spec.template.spec.containers[0] as Container;
const podLabels = deployment.spec.template.metadata.labels;
const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
const httpPort = container.ports?.find((p) => p.name === 'http')?.containerPort;

/** The server's exposition: the names and types a scraper sees. */
async function exportedGauges(): Promise<Set<string>> {
  const metrics = new ServerMetrics(
    {
      busySlots: () => 1,
      queueLength: () => 2,
      kvCellsUsed: () => 3,
      kvCellsRunning: () => 3,
      kvCellsTotal: () => 512,
    },
    { processMetrics: false },
  );
  const families = parseExposition((await metrics.exposition()).body);
  return new Set([...families.values()].filter((f) => f.type === 'gauge').map((f) => f.name));
}

/** `name{label=value}` -> name (the picker's metric spec syntax). */
const metricName = (spec: string): string => spec.replace(/\{.*\}$/, '');

t.test('Deployment and Service pass the Kubernetes schema; kustomize applies both', async (t) => {
  t.doesNotThrow(() => new Deployment(deployment as never).validate(), 'Deployment');
  t.doesNotThrow(() => new Service(service as never).validate(), 'Service');
  t.same(kustomization.resources.sort(), ['deployment.yaml', 'service.yaml']);
  t.equal(kustomization.images[0]?.name, container.image, 'the image kustomize sets is the container image');
  t.equal(deployment.kind, 'Deployment');
});

t.test('the server runs from the environment the Deployment gives it', async (t) => {
  t.same(container.command?.slice(-2), ['src/entry/main.ts', 'serve']);
  const usage = serveUsage();
  for (const name of Object.keys(env)) t.match(usage, `[env ${name}]`, `${name} is a setting the server reads`);
  // The container's own arguments (none) and environment, as the server parses them.
  const config = parseServeConfig(container.args ?? [], env);
  t.equal(config.host, '0.0.0.0', 'listens beyond the pod loopback');
  t.equal(config.port, httpPort, 'on the declared container port');
  t.match(config.model, /^\/models\//, 'the model comes from the mounted volume');
  t.equal(config.metrics, true, 'GET /metrics is on: the Endpoint Picker scrapes it');
  t.equal(container.resources?.limits?.['nvidia.com/gpu'], 1, 'one GPU per replica');
});

t.test('probes: /health gates readiness (503 while loading or draining); liveness outlasts the drain', async (t) => {
  const config = parseServeConfig([], env);
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'] as const) {
    const p = container[probe];
    t.equal(p?.httpGet?.path, '/health', `${probe} on /health`);
    t.equal(p?.httpGet?.port, 'http', `${probe} on the http port`);
  }
  t.equal(container.readinessProbe?.failureThreshold, 1, 'out of rotation at the first 503');
  const startup = container.startupProbe;
  t.ok(
    (startup?.periodSeconds ?? 10) * (startup?.failureThreshold ?? 3) >= 120,
    'two minutes or more for the model to load',
  );
  const live = container.livenessProbe;
  t.ok(
    (live?.periodSeconds ?? 10) * (live?.failureThreshold ?? 3) > config.shutdownGraceSeconds,
    'liveness fails only after the drain would have ended',
  );
  const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
  t.ok(preStop > 0, 'preStop waits for the endpoints to drop the pod');
  t.ok(
    (deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30) > preStop + config.shutdownGraceSeconds,
    'the pod is given the preStop wait plus the server drain before it is killed',
  );
});

t.test('Service, InferencePool and the chart values select the Deployment pods and port', async (t) => {
  const { matchLabels } = deployment.spec.selector;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);
  t.ok(selects(matchLabels), 'Deployment selector');
  t.ok(selects(service.spec.selector), 'Service selector');
  t.ok(selects(pool.spec.selector.matchLabels), 'InferencePool selector');
  t.ok(selects(values.router.modelServers.matchLabels), 'chart values selector');
  t.same(values.router.modelServers.matchLabels, pool.spec.selector.matchLabels, 'the chart creates this pool');
  t.equal(service.spec.ports[0]?.targetPort, 'http');
  t.same(
    pool.spec.targetPorts.map((p) => p.number),
    [httpPort],
  );
  t.same(values.router.modelServers.targetPorts, pool.spec.targetPorts);
  t.equal(pool.spec.appProtocol, values.router.modelServers.protocol);
});

t.test('InferencePool: inference.networking.k8s.io/v1, with the fields its CRD requires', async (t) => {
  t.equal(pool.apiVersion, 'inference.networking.k8s.io/v1');
  t.equal(pool.kind, 'InferencePool');
  t.same(Object.keys(pool.spec).sort(), ['appProtocol', 'endpointPickerRef', 'selector', 'targetPorts']);
  t.ok(pool.spec.targetPorts.length >= 1 && pool.spec.targetPorts.length <= 8, '1..8 target ports');
  t.ok(['http', 'kubernetes.io/h2c'].includes(pool.spec.appProtocol ?? ''), 'a known appProtocol');
  const ref = pool.spec.endpointPickerRef;
  t.same(Object.keys(ref ?? {}).sort(), ['failureMode', 'name', 'port']);
  t.equal(ref?.name, `${pool.metadata.name}-epp`, "the picker's Service as llm-d's chart names it for this release");
  t.equal(ref?.port?.number, 9002, "the picker's ext-proc port");
  t.equal(ref?.failureMode, values.router.inferencePool.failureMode);
  t.ok(['FailOpen', 'FailClose'].includes(ref?.failureMode ?? ''));
});

t.test("the Endpoint Picker's engine configuration names what /metrics exports", async (t) => {
  const { epp } = values.router;
  const text = epp.pluginsCustomConfig[epp.pluginsConfigFile];
  if (!t.ok(text, 'the config file the picker is told to load is in the values') || text === undefined) return;
  const config = parseYaml(text) as PickerConfig;
  t.equal(config.apiVersion, 'llm-d.ai/v1alpha1');
  t.equal(config.kind, 'EndpointPickerConfig');
  const declared = new Set(config.plugins.map((p) => p.name ?? p.type));
  for (const profile of config.schedulingProfiles)
    for (const p of profile.plugins) t.ok(declared.has(p.pluginRef), `${profile.name}: ${p.pluginRef} is declared`);

  const source = config.plugins.find((p) => p.type === 'metrics-data-source');
  t.equal(source?.parameters?.path, '/metrics');
  const extractor = config.plugins.find((p) => p.type === 'core-metrics-extractor');
  const params = extractor?.parameters as { defaultEngine?: string; engineConfigs?: EngineConfig[] } | undefined;
  const engineType = podLabels['llm-d.ai/engine-type'];
  const engine = params?.engineConfigs?.find((e) => e.name === engineType);
  if (!t.ok(engine, `an engine configuration for the pods' llm-d.ai/engine-type (${engineType})`) || !engine) return;
  t.equal(params?.defaultEngine, engine.name, 'unlabelled pods get it too');

  const gauges = await exportedGauges();
  const specs = [engine.queuedRequestsSpec, engine.runningRequestsSpec, engine.kvUsageSpec, engine.cacheInfoSpec ?? ''];
  for (const spec of specs) t.ok(gauges.has(metricName(spec)), `${spec} is a gauge /metrics exports`);
  t.same(
    [engine.queuedRequestsSpec, engine.runningRequestsSpec, engine.kvUsageSpec].map(metricName),
    ['llamacpp:requests_deferred', 'llamacpp:requests_processing', 'llama_slots_kv_cache_usage_ratio'],
    "this server's own names for queued, running and KV use",
  );
  // The picker's built-in vLLM mapping (its default engine) must work as well.
  for (const name of ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc'])
    t.ok(gauges.has(name), `${name} is exported for pods without the label`);
});
