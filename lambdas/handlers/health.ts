// GET /healthz (docs/api.md): 200 {"ok":true} while every dependency answers, else 503 naming those that do not.

export interface HealthReport {
  ok: boolean;
  /** The dependencies that did not answer (store, queue, workflows). */
  unavailable?: string[];
  /** Each dependency's state: "ok", or why it is not. */
  dependencies?: Record<string, string>;
}

/** A probe answers (resolves) or does not; it is given a signal that fires when its time is up. */
export type HealthProbe = (signal: AbortSignal) => Promise<unknown>;

export class ProbeTimedOut extends Error {
  override readonly name = 'ProbeTimedOut';
}

/** Runs the probes side by side, each bounded by `timeoutMs`: a dependency that hangs counts as down. */
export function healthCheck(probes: Record<string, HealthProbe>, timeoutMs = 1_500): () => Promise<HealthReport> {
  return async () => {
    const entries = await Promise.all(
      Object.entries(probes).map(async ([name, probe]): Promise<[string, string]> => {
        const abort = new AbortController();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            abort.abort();
            reject(new ProbeTimedOut(`no answer within ${timeoutMs} ms`));
          }, timeoutMs);
        });
        try {
          await Promise.race([probe(abort.signal), timeout]);
          return [name, 'ok'];
        } catch (err) {
          return [name, `${(err as Error).name}: ${(err as Error).message}`.slice(0, 300)];
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const unavailable = entries.filter(([, state]) => state !== 'ok').map(([name]) => name);
    return unavailable.length === 0 ? { ok: true } : { ok: false, unavailable, dependencies: Object.fromEntries(entries) };
  };
}
