// The usage API's answers, kept a few seconds: every open page asks every 5 s, and a tag chart reads a
// window's tag rows per namespace. However many tabs are open, the store is read once per answer and
// period, on the event loop that also serves the lease RPCs. Who may read is checked before the cache.

/** How long an answer is reused, in ms (a little under the page's 5 s refresh). */
export const ANSWER_TTL_MS = 4000;
/** Most answers kept (queries are few: 5 groups × 4 ranges, plus tag keys). */
const MAX_ANSWERS = 64;

export class AnswerCache {
  private readonly answers = new Map<string, { atMs: number; body: Promise<string> }>();

  constructor(private readonly ttlMs = ANSWER_TTL_MS) {}

  /**
   * The JSON text for `key`, made by `make` (a value, or a promise of one: the view may read the store
   * asynchronously) unless an answer younger than the TTL is kept or being made (readers asking meanwhile
   * share it). A failure, thrown or rejected, is not kept.
   */
  get(key: string, nowMs: number, make: () => unknown): Promise<string> {
    const kept = this.answers.get(key);
    if (kept !== undefined && nowMs - kept.atMs < this.ttlMs && nowMs >= kept.atMs) return kept.body;
    const body = Promise.resolve()
      .then(make)
      .then((v) => JSON.stringify(v));
    if (this.answers.size >= MAX_ANSWERS) this.answers.clear();
    const entry = { atMs: nowMs, body };
    this.answers.set(key, entry);
    body.catch(() => {
      if (this.answers.get(key) === entry) this.answers.delete(key);
    });
    return body;
  }
}
