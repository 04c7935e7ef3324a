// Publishes agents' wake-ups to AWS IoT Core (the push channel in AWS): one HTTPS POST per notification,
// signed with SigV4 from the Lambda's own credentials (no IoT SDK client in the bundle).
import { createHash, createHmac } from 'node:crypto';
import { wakeTopic } from '../core/push-channel.ts';
import type { CommandSignal } from '../ports/index.ts';

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');
/** RFC 3986 encoding, as SigV4 wants it. */
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** The signed request publishing `payload` on `topic` (exported for its unit test). */
export function signedPublish(opts: {
  endpoint: string;
  region: string;
  topic: string;
  payload: string;
  credentials: Credentials;
  now: Date;
}) {
  const { endpoint, region, topic, payload, credentials, now } = opts;
  const amzDate = now.toISOString().replace(/[:-]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  // The topic is one path label: its slashes are encoded, and SigV4 encodes the path once more.
  const path = `/topics/${uriEncode(topic)}`;
  const canonicalPath = `/topics/${uriEncode(uriEncode(topic))}`;
  const query = 'qos=1';
  const headers: Record<string, string> = {
    host: endpoint,
    'x-amz-content-sha256': sha256(payload),
    'x-amz-date': amzDate,
    ...(credentials.sessionToken ? { 'x-amz-security-token': credentials.sessionToken } : {}),
  };
  const names = Object.keys(headers).sort();
  const canonical = [
    'POST',
    canonicalPath,
    query,
    ...names.map((n) => `${n}:${headers[n]}`),
    '',
    names.join(';'),
    headers['x-amz-content-sha256'],
  ].join('\n');
  const scope = `${day}/${region}/iotdevicegateway/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), 'iotdevicegateway'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return { url: `https://${endpoint}${path}?${query}`, headers };
}

/** Looks at the index before a wake-up: about 3 s in all, then the wake-up goes out anyway. */
export const VISIBILITY_LOOKS = 6;
const lookAfter = (look: number) => 50 * 2 ** look;

export interface IotWakeupOptions {
  endpoint: string;
  region: string;
  credentials: () => Credentials;
  onError: (agent: string, err: unknown) => void;
  /**
   * Whether a fetch of `agent` would find these commands now. An agent fetches its commands from
   * gsi1, which is eventually consistent: a wake-up published right after the write can reach the
   * agent before the index has the commands, and the agent, finding nothing, waits for its periodic
   * fetch (minutes). Unset: publish at once (the local broker, whose table has no lag).
   */
  visible?: (agent: string, commandIds: string[]) => Promise<boolean>;
  /** Milliseconds before look `n + 1` (injectable for tests). */
  lookAfterMs?: (look: number) => number;
}

/**
 * The command signal of the AWS functions: long polls keep polling the table (`inner`), and each
 * notification is also published on the agent's wake-up topic, once the commands it announces show
 * in the index an agent's fetch reads. A failed publish is logged, not thrown: the agent fetches
 * every few minutes anyway.
 */
export function withIotWakeups(inner: CommandSignal, opts: IotWakeupOptions): CommandSignal & { flush(): Promise<void> } {
  const inflight = new Set<Promise<void>>();
  const wait = opts.lookAfterMs ?? lookAfter;

  async function whenVisible(agent: string, ids: string[]): Promise<void> {
    if (!opts.visible || ids.length === 0) return;
    for (let look = 0; look < VISIBILITY_LOOKS; look++) {
      // A look that fails (throttled) does not hold the wake-up back: it goes out as it did before.
      if (await opts.visible(agent, ids).catch(() => true)) return;
      await new Promise((r) => setTimeout(r, wait(look)));
    }
  }

  async function publish(agent: string): Promise<void> {
    const payload = JSON.stringify({ agent });
    const req = signedPublish({
      endpoint: opts.endpoint,
      region: opts.region,
      topic: wakeTopic(agent),
      payload,
      credentials: opts.credentials(),
      now: new Date(),
    });
    const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: payload, signal: AbortSignal.timeout(3_000) });
    if (!res.ok) throw new Error(`IoT publish answered ${res.status}`);
  }

  return {
    notify(agent, commands) {
      inner.notify(agent, commands);
      const ids = (commands ?? []).map((c) => c.id);
      const p = whenVisible(agent, ids)
        .then(() => publish(agent))
        .catch((err) => opts.onError(agent, err))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    },
    wait: (agent, ms, signal) => inner.wait(agent, ms, signal),
    /** Lambda freezes a container once its handler returns: entries await the publishes first. */
    async flush() {
      await Promise.all([...inflight]);
    },
  };
}
