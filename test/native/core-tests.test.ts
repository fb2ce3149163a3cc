// The native core tests (native/tests/core_tests.cpp) through CTest: build-cmake (the addon's tree, whose llama.cpp
// libraries are already built) is configured with LLAMA_SLOTS_TESTS=ON, the test binary built and `ctest` run on
// the tiny model. The harness is the project's own (native/tests/harness.h): nothing to install. scripts/sanitize.sh
// runs the same tests under each sanitizer.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { projectRoot } from '../../src/paths.ts';
import { modelPath } from '../helpers/models.ts';

const buildDir = join(projectRoot, 'build-cmake');

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(command, args, { cwd: projectRoot, encoding: 'utf8', env: { ...process.env, ...env } });
}

t.test('the native core tests pass under ctest', { timeout: 600_000 }, async (t) => {
  const configure = run('cmake', ['-S', projectRoot, '-B', buildDir, '-DLLAMA_SLOTS_TESTS=ON']);
  t.equal(
    configure.status,
    0,
    configure.status === 0
      ? 'cmake configures'
      : `cmake configure failed:\n${configure.stdout.slice(-3000)}${configure.stderr}`,
  );
  const jobs = String(Number(process.env.LLAMA_BUILD_JOBS) || availableParallelism());
  const build = run('cmake', ['--build', buildDir, '--target', 'llama-slots-core-tests', '--parallel', jobs]);
  t.equal(
    build.status,
    0,
    build.status === 0
      ? 'the test binary builds'
      : `build failed:\n${build.stdout.slice(-4000)}${build.stderr.slice(-2000)}`,
  );

  const ctest = run('ctest', ['--test-dir', buildDir, '--output-on-failure', '-V'], {
    LLAMA_SLOTS_TEST_MODEL: await modelPath('tiny'),
    LLAMA_SLOTS_TEST_SWA_MODEL: await modelPath('tiny-gemma3'),
  });
  const out = ctest.stdout + ctest.stderr;
  t.equal(ctest.status, 0, ctest.status === 0 ? 'ctest passes' : `ctest failed:\n${out.slice(-6000)}`);
  t.match(out, /100% tests passed, 0 tests failed out of 1/);
  // The harness's own count: every test case ran and passed (a filter or a skipped case would show here).
  const cases = /test cases:\s+(\d+) \|\s+(\d+) passed \|\s+(\d+) failed \|\s+(\d+) skipped/.exec(out);
  t.ok(cases, 'the harness summary line');
  const [total, passed, failed, skipped] = (cases ?? []).slice(1).map(Number);
  t.ok((total ?? 0) >= 12, `${total} test cases`);
  t.notMatch(out, /LLAMA_SLOTS_TEST_SWA_MODEL not set/, 'the sliding-window case ran');
  t.equal(passed, total);
  t.equal(failed, 0);
  t.equal(skipped, 0);
});
