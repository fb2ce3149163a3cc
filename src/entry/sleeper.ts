// --sleep-idle-seconds with one model (llama-server's sleep): after that long without a request that needs the model,
// the model is unloaded (its memory freed); the next such request loads it again and waits meanwhile. Requests that
// only read (/health, /props, /v1/models, /metrics) neither wake it nor keep it awake; /props says is_sleeping.
import type { SleepControl } from '../server/deps.ts';

export interface SleepActions {
  idleMs: number;
  /** Frees the model (no request holds it). */
  sleep(): Promise<void>;
  /** Loads it again. A failure fails the waking request and leaves it asleep (the next request tries again). */
  wake(): Promise<void>;
  /** Called after each change, for the log. */
  changed?(state: 'sleeping' | 'awake'): void;
}

type State = 'awake' | 'falling' | 'sleeping' | 'waking';

export class IdleSleeper implements SleepControl {
  #actions: SleepActions | undefined;
  #state: State = 'awake';
  #active = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #transition: Promise<void> = Promise.resolve();

  /** Starts counting idle time (until then, the model never sleeps). */
  enable(actions: SleepActions): void {
    this.#actions = actions;
    this.#arm();
  }

  get sleeping(): boolean {
    return this.#state === 'falling' || this.#state === 'sleeping';
  }

  async hold(): Promise<() => void> {
    this.#active++;
    this.#disarm();
    try {
      while (this.#state !== 'awake') {
        if (this.#state === 'sleeping') this.#wake();
        await this.#transition;
      }
    } catch (err) {
      this.#active--;
      throw err;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      this.#arm();
    };
  }

  /** Stops the idle timer (at shutdown). */
  disable(): void {
    this.#disarm();
    this.#actions = undefined;
  }

  #arm(): void {
    const actions = this.#actions;
    if (actions === undefined || this.#active > 0 || this.#state !== 'awake' || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#active > 0 || this.#state !== 'awake') return;
      this.#state = 'falling';
      this.#transition = actions.sleep().then(
        () => {
          this.#state = 'sleeping';
          actions.changed?.('sleeping');
        },
        () => {
          // Could not free it: it stays awake and tries again after the next idle period.
          this.#state = 'awake';
          this.#arm();
        },
      );
    }, actions.idleMs);
    this.#timer.unref?.();
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #wake(): void {
    const actions = this.#actions;
    if (actions === undefined) {
      this.#transition = Promise.reject(new Error('the server is shutting down'));
      this.#transition.catch(() => {});
      return;
    }
    this.#state = 'waking';
    const waking = actions.wake().then(
      () => {
        this.#state = 'awake';
        actions.changed?.('awake');
        this.#arm();
      },
      (err: unknown) => {
        this.#state = 'sleeping';
        throw err;
      },
    );
    // Every waiter sees the failure through `await this.#transition`; none of it is left unhandled.
    waking.catch(() => {});
    this.#transition = waking;
  }
}
