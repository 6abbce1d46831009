// The innermost handler: the model's targets in the order of its balancing strategy, then its fallback
// models' targets, each tried and retried by the retry policy, until one answers. Targets whose circuit
// is open are skipped; when every one is, the answer is 503 llmgw_upstream_unavailable with Retry-After.
// A stream that fails before its first frame is retried like any answer; once frames have gone to the
// app, failures end the stream (see call-target). The gateway's own refusals never get here (they come
// from the interceptors around it).
import type { Logger } from 'pino';
import type { Clock } from '../../common/clock.js';
import { GatewayError } from '../../common/errors.js';
import { ProviderError } from '../errors.js';
import { callTarget, type CallOptions } from '../providers/call-target.js';
import { tracedAttempt } from '../tracing/attempt-span.js';
import { hedge } from '../resilience/hedge.js';
import { backoffMs, classify, requestedWaitMs } from '../resilience/retry-policy.js';
import type { TargetStates } from '../resilience/target-state.js';
import type { ModelRoute, Target } from '../routing/router.js';
import type { Runtime } from '../runtime.js';
import { sleepUnlessCancelled } from './cancel-signal.js';
import { onComplete } from './on-complete.js';
import type { GatewayRequest, GatewayResponse, Handler } from './types.js';

export interface ProviderHandlerOptions {
  runtime: () => Runtime;
  clock: Clock;
  /** Breakers, in-flight counts and latencies per target; they outlive config reloads. */
  targets: TargetStates;
  logger?: Logger;
  /** Returns [0, 1); injectable so weighted picks and jitter are testable. */
  random?: () => number;
  /** Hears retries and fallbacks (metrics). */
  observer?: UpstreamObserver;
}

/** What the handler reports as it moves between attempts; only failures reach it, never a first attempt. */
export interface UpstreamObserver {
  /** Another attempt on the target whose attempt just failed. */
  retry(target: Target): void;
  /**
   * The request moved on from a failed target to another: the model's next target or a fallback model's.
   * `model` is the name the app asked for, `toModel` the configured model `to` serves.
   */
  fallback(model: string, from: Target, to: Target, toModel: string): void;
}

/** A provider's "the prompt does not fit this model's context window" (OpenAI's code, Anthropic's message). */
export function isContextOverflow(err: unknown): boolean {
  if (!(err instanceof ProviderError) || (err.status !== 400 && err.status !== 413)) return false;
  const e = (err.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (e?.code === 'context_length_exceeded') return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /prompt is too long|context length|context window|maximum context/i.test(message);
}

/** The model's timeouts, else the provider's, else `upstream.*`. */
function timeoutsFor(route: ModelRoute, target: Target, runtime: Runtime): { firstByteMs: number; idleMs: number; totalMs: number | undefined } {
  const m = route.timeouts ?? {};
  const p = target.provider.config.timeouts ?? {};
  const u = runtime.config.upstream;
  return {
    firstByteMs: m.firstByteMs ?? p.firstByteMs ?? u.headersTimeoutMs,
    idleMs: m.idleMs ?? p.idleMs ?? u.bodyTimeoutMs,
    totalMs: m.totalMs ?? p.totalMs ?? u.totalTimeoutMs,
  };
}

export function providerHandler(opts: ProviderHandlerOptions): Handler {
  const random = opts.random ?? Math.random;
  const now = (): number => opts.clock.monotonic();
  const observer = opts.observer;
  return async (req) => {
    const trace = req.trace;
    const runtime = opts.runtime();
    const breakers = runtime.config.circuitBreaker.enabled;
    const first = runtime.router.resolve(req.model);
    const chain: ModelRoute[] = [first, ...first.fallbacks.map((m) => runtime.router.resolve(m))];
    // The budget and attempt counts are the requested model's.
    const policy = first.retry;
    const deadline = now() + policy.budgetMs;
    let attempts = 0;
    let last: unknown;
    let reopensAt = Infinity;
    // Failed attempts and the pauses between them count as waiting for the upstream, not as overhead.
    let waitedMs = 0;
    /** The target of the last failed attempt, until the next attempt says whether that is a retry or a fallback. */
    let failed: Target | undefined;
    const callOptions = (route: ModelRoute, target: Target, traceparent?: string): CallOptions => {
      const o = {
        clock: opts.clock,
        defaultMaxTokens: route.defaultMaxTokens ?? runtime.config.translation.defaultMaxTokens,
        promptCache: route.promptCache,
        timeouts: timeoutsFor(route, target, runtime),
      };
      return traceparent === undefined ? o : { ...o, traceparent };
    };
    const span = req.span;
    for (let r = 0; r < chain.length; r++) {
      const route = chain[r]!;
      let order = opts.targets.order(route, random);
      const [a, b] = order;
      // Hedging: the first two targets raced (non-streaming requests, both circuits closed).
      if (route === first && !req.stream && route.hedgeAfterMs !== undefined && a !== undefined && b !== undefined && [a, b].every((t) => !breakers || opts.targets.get(t).breaker.stateAt(now()) === 'closed')) {
        const started = now();
        if (trace !== undefined) trace.target = a;
        try {
          let leg = attempts;
          const call = (hedgedReq: GatewayRequest, t: Target): Promise<GatewayResponse> =>
            span === undefined ? callTarget(hedgedReq, t, callOptions(route, t)) : tracedAttempt(span, hedgedReq, t, ++leg, (tp) => callTarget(hedgedReq, t, callOptions(route, t, tp)));
          const won = await hedge(req, [a, b], route.hedgeAfterMs, call, (t, outcome) => {
            const breaker = opts.targets.get(t).breaker;
            if (outcome.ok) return breaker.onSuccess(now());
            if (outcome.cancelled || classify(outcome.err) === 'stop') return breaker.release();
            breaker.onFailure(now());
            opts.logger?.info({ reqId: req.id, model: route.name, provider: t.provider.id, upstreamModel: t.model, action: 'hedge', err: (outcome.err as Error).message }, 'upstream attempt failed');
          }, (err) => classify(err) !== 'stop');
          won.res.meta.attempts = won.calls;
          if (trace !== undefined) trace.target = won.target;
          return won.res;
        } catch (err) {
          last = err;
          failed = a;
          attempts += 2;
          waitedMs += now() - started;
          if (req.signal.aborted || classify(err) === 'stop') throw err;
          order = order.slice(2);
        }
      }
      targets: for (const target of order) {
        const state = opts.targets.get(target);
        for (let retry = 0; ; retry++) {
          if (breakers && !state.breaker.tryAcquire(now())) {
            reopensAt = Math.min(reopensAt, state.breaker.retryAt());
            break;
          }
          if (failed !== undefined) {
            if (failed === target) observer?.retry(target);
            else observer?.fallback(req.model, failed, target, route.name);
            failed = undefined;
          }
          if (trace !== undefined) trace.target = target;
          attempts++;
          state.inflight++;
          const started = now();
          let res;
          try {
            res = await (span === undefined ? callTarget(req, target, callOptions(route, target)) : tracedAttempt(span, req, target, attempts, (tp) => callTarget(req, target, callOptions(route, target, tp))));
          } catch (err) {
            state.inflight--;
            last = err;
            waitedMs += now() - started;
            const action = req.signal.aborted ? 'stop' : classify(err);
            // Only failures that speak of the target count against its breaker.
            if (action === 'stop') state.breaker.release();
            else state.breaker.onFailure(now());
            if (req.signal.aborted) throw err;
            failed = target;
            const status = err instanceof ProviderError ? err.status : undefined;
            opts.logger?.info({ reqId: req.id, attempt: attempts, model: route.name, provider: target.provider.id, upstreamModel: target.model, status, action, err: (err as Error).message }, 'upstream attempt failed');
            // The prompt is too long for this model: its larger-context fallbacks replace the rest of the chain.
            if (isContextOverflow(err) && route.contextFallbacks.length > 0) {
              chain.splice(r + 1, chain.length, ...route.contextFallbacks.map((m) => runtime.router.resolve(m)));
              break targets;
            }
            if (action === 'stop') throw err;
            if (action === 'next-target' || retry >= policy.attempts) break;
            const asked = requestedWaitMs(err, opts.clock.now());
            // A provider asking for a longer pause than we accept: another target may answer now.
            if (asked !== undefined && asked > policy.maxRetryAfterMs) break;
            const wait = Math.max(asked ?? 0, backoffMs(retry, policy, random));
            if (now() + wait > deadline) break;
            await sleepUnlessCancelled(wait, req.signal);
            waitedMs += wait;
            continue;
          }
          state.breaker.onSuccess(now());
          if (res.meta.upstreamMs !== undefined) opts.targets.observeTtfb(target, res.meta.upstreamMs);
          res.meta.attempts = attempts;
          if (waitedMs > 0) res.meta.upstreamMs = (res.meta.upstreamMs ?? 0) + waitedMs;
          // A JSON answer is complete here; a stream is in flight until its last frame.
          if (res.kind === 'json') {
            state.inflight--;
            return res;
          }
          return onComplete(res, () => void state.inflight--);
        }
        if (now() >= deadline && last !== undefined) throw last;
      }
    }
    if (last !== undefined) throw last;
    // Nothing was tried: every target's circuit is open.
    if (trace !== undefined) trace.target ??= first.targets[0];
    const seconds = Math.max(1, Math.ceil((reopensAt - now()) / 1000));
    throw new GatewayError('llmgw_upstream_unavailable', 503, `every target of model "${req.model}"${first.fallbacks.length > 0 ? ' and its fallbacks' : ''} is failing (circuit open); retry in ${seconds} s`, {
      retryAfterSeconds: seconds,
    });
  };
}
