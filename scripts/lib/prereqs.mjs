// Checks for the tools the native build needs, with messages that say how to get them.
import { spawnSync } from 'node:child_process';

const HINTS = {
  git: 'install git (Debian/Ubuntu: apt-get install git)',
  cmake: 'install CMake 3.14+ (Debian/Ubuntu: apt-get install cmake)',
  'c++': 'install a C++17 compiler (Debian/Ubuntu: apt-get install g++)',
  tar: 'install tar (Debian/Ubuntu: apt-get install tar)',
};

export function hasCommand(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** Throws an Error naming every missing tool and how to install it. */
export function requireTools(tools) {
  const missing = tools.filter((t) => {
    if (t === 'c++') return !['c++', 'g++', 'clang++'].some((c) => hasCommand(c));
    return !hasCommand(t);
  });
  if (missing.length > 0) {
    const lines = missing.map((t) => `  - ${t}: ${HINTS[t] ?? 'install it and make sure it is on PATH'}`);
    throw new Error(`missing build prerequisites:\n${lines.join('\n')}`);
  }
}
