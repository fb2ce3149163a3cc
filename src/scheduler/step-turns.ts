// Several models on one machine: each has its own decoder and scheduler, and their steps take turns on the cores
// (or the card) instead of running at once. Two decodes at once would split the same cores between two
// llama_decode calls (llama-server's router runs a process per model and lost 72% of its throughput that way here);
// one at a time, each runs at full speed.
//
// The rule: a scheduler asks for a turn before each step and gives it back as soon as its llama_decode returns
// (its event handling overlaps the next model's decode). Waiting schedulers are served in the order they asked, so
// busy models alternate step by step: every model with work gets one step per round, whatever its batch. Since one
// step advances every running request of its model by a token, each running stream gets the same token rate
// whichever model it is on, and a model alone gets every turn at once.

export class StepTurns {
  #held = false;
  readonly #waiting: Array<() => void> = [];
  /** Steps run, and steps that had to wait for another model's turn. */
  steps = 0;
  waited = 0;

  /** Resolves when this caller may step; call the returned function once its decode is done. */
  acquire(): Promise<() => void> {
    this.steps++;
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve(this.#releaser());
    }
    this.waited++;
    return new Promise((resolve) => this.#waiting.push(() => resolve(this.#releaser())));
  }

  /** Schedulers waiting for a turn now. */
  get queued(): number {
    return this.#waiting.length;
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#held = false;
    };
  }
}
