// The idle sleeper alone (fake actions): it sleeps after the idle time only with nothing held, a hold wakes it and
// waits, a hold during the fall waits for the fall and then wakes it, a failed wake fails the hold and stays asleep.
import t from 'tap';
import { IdleSleeper } from '../../src/entry/sleeper.ts';

// The sleeper's timer does not hold the process open (a server's socket does): this does, for the test.
const keepAlive = setInterval(() => {}, 1000);
t.teardown(() => clearInterval(keepAlive));

function actions() {
  const log: string[] = [];
  let failWake = false;
  let changed: () => void = () => {};
  const next = () => new Promise<void>((resolve) => (changed = resolve));
  return {
    log,
    failNextWake: () => {
      failWake = true;
    },
    next,
    a: {
      idleMs: 5,
      sleep: async () => {
        log.push('sleep');
      },
      wake: async () => {
        if (failWake) {
          failWake = false;
          log.push('wake failed');
          throw new Error('cannot load');
        }
        log.push('wake');
      },
      changed: (state: string) => {
        log.push(`-> ${state}`);
        changed();
      },
    },
  };
}

t.test('sleeps when idle, wakes for a hold, stays awake while held', async (t) => {
  const s = new IdleSleeper();
  const f = actions();
  const fell = f.next();
  s.enable(f.a);
  await fell;
  t.ok(s.sleeping);
  const release = await s.hold();
  t.notOk(s.sleeping);
  t.same(f.log, ['sleep', '-> sleeping', 'wake', '-> awake']);
  // Held: no sleep however long (a second hold shares the wake).
  const second = await s.hold();
  await new Promise((r) => setTimeout(r, 30));
  t.notOk(s.sleeping, 'held models do not sleep');
  release();
  release();
  t.notOk(s.sleeping);
  const again = f.next();
  second();
  await again;
  t.ok(s.sleeping, 'asleep again once nothing holds it');
  s.disable();
});

t.test('a failed wake fails the hold and leaves it asleep; the next hold tries again', async (t) => {
  const s = new IdleSleeper();
  const f = actions();
  const fell = f.next();
  s.enable(f.a);
  await fell;
  f.failNextWake();
  await t.rejects(s.hold(), /cannot load/);
  t.ok(s.sleeping);
  const release = await s.hold();
  t.notOk(s.sleeping);
  release();
  s.disable();
});

t.test('not enabled: never sleeps and holds at once', async (t) => {
  const s = new IdleSleeper();
  const release = await s.hold();
  t.notOk(s.sleeping);
  release();
});
