// The agent's push channel: an MQTT subscription to its wake-up topic, so an idle agent needs no long poll.
// Commands stay with the server: a wake-up only says "fetch now"; the agent also fetches every few minutes,
// and goes back to long polls (auto) while the channel is down. The `mqtt` package loads only when used.
import type { Logger } from './log.ts';

export type TransportMode = 'auto' | 'mqtt' | 'poll';
export const TRANSPORT_MODES: readonly TransportMode[] = ['auto', 'mqtt', 'poll'];

/**
 * A fetch this often even without a wake-up: a lost wake-up delays a command by this much at most.
 * Three minutes keeps an idle agent under $0.05 a month in AWS (bench/cost.ts).
 */
export const FETCH_EVERY_MS = 180_000;
/** How long the first poll waits for the channel to come up before it long-polls instead. */
const FIRST_CONNECT_MS = 5_000;

export interface Transport {
  /**
   * Called before each poll with the long-poll wait the agent would use: returns the wait to use.
   * On the push channel it first waits for a wake-up (or the periodic fetch), then asks for 0.
   */
  beforePoll(wait: number, stop: AbortSignal): Promise<number>;
  readonly up: boolean;
  close(): void;
}

export interface TransportOptions {
  mode: TransportMode;
  /** mqtt://, mqtts:// or wss:// (AWS IoT Core with its custom authorizer); none: long polls only. */
  url?: string;
  agent: string;
  token: string;
  log: Logger;
  fetchEveryMs?: number;
}

const wakeTopic = (agent: string) => `xpu-reboot/agents/${agent}/wake`;

export function createTransport(opts: TransportOptions): Transport {
  if (opts.mode === 'poll' || !opts.url) return { beforePoll: async (wait) => wait, up: false, close() {} };
  return new MqttTransport(opts);
}

class MqttTransport implements Transport {
  readonly #opts: TransportOptions;
  #client: { end(force?: boolean): void } | undefined;
  #started: Promise<void> | undefined;
  #up = false;
  /** A wake-up (or a reconnect, which may have missed one) since the last fetch. */
  #pending = true;
  #notify: (() => void) | undefined;

  constructor(opts: TransportOptions) {
    this.#opts = opts;
  }

  get up(): boolean {
    return this.#up;
  }

  #poke(): void {
    const n = this.#notify;
    this.#notify = undefined;
    n?.();
  }

  #start(): Promise<void> {
    this.#started ??= (async () => {
      let connect: typeof import('mqtt').connect;
      try {
        ({ connect } = await import('mqtt'));
      } catch (err) {
        // A build without the mqtt package: long polls, as with --transport poll.
        this.#opts.log.warn('push channel unavailable (mqtt package not found); long-polling', { error: String(err) });
        return;
      }
      const { agent, token, log } = this.#opts;
      const client = connect(this.#opts.url!, {
        username: agent,
        password: token,
        clientId: `${agent}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
        clean: true,
        reconnectPeriod: 5_000,
        connectTimeout: 10_000,
        keepalive: 60,
      });
      this.#client = client;
      client.on('connect', () => {
        client.subscribe(wakeTopic(agent), { qos: 1 }, (err, granted) => {
          if (err || granted?.some((g) => g.qos === 128)) {
            log.warn('push channel: subscription refused; long-polling instead', { error: err ? String(err) : 'refused' });
            return;
          }
          if (!this.#up) log.info('push channel up: fetching on wake-ups', { url: this.#opts.url });
          this.#up = true;
          this.#pending = true;
          this.#poke();
        });
      });
      client.on('message', () => {
        this.#pending = true;
        this.#poke();
      });
      const down = (why: string) => {
        if (this.#up) log.warn('push channel down: long-polling until it is back', { reason: why });
        this.#up = false;
        this.#poke();
      };
      client.on('close', () => down('closed'));
      client.on('offline', () => down('offline'));
      client.on('error', (err) => down(String(err)));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, FIRST_CONNECT_MS);
        this.#notify = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    })();
    return this.#started;
  }

  async beforePoll(wait: number, stop: AbortSignal): Promise<number> {
    await this.#start();
    if (!this.#up) {
      if (this.#opts.mode === 'auto') return wait;
      // mqtt only: no long polls; fetch now and then until the channel is back.
      await this.#sleep(Math.min(this.#opts.fetchEveryMs ?? FETCH_EVERY_MS, 30_000), stop);
      return 0;
    }
    if (!this.#pending) await this.#sleep(this.#opts.fetchEveryMs ?? FETCH_EVERY_MS, stop);
    this.#pending = false;
    return 0;
  }

  /** Until a wake-up, a change of the channel, `ms` or stop. */
  #sleep(ms: number, stop: AbortSignal): Promise<void> {
    if (stop.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop.removeEventListener('abort', done);
        if (this.#notify === done) this.#notify = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      stop.addEventListener('abort', done, { once: true });
      this.#notify = done;
    });
  }

  close(): void {
    this.#client?.end(true);
  }
}
