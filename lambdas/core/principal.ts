// Who a request speaks for, and how that is written in a reboot's history (docs/reboot-model.md `by`).
import type { Actor } from './types.ts';

/**
 * The principal a bearer token names. `agent` carries the agent id it may act as (`node` for the
 * host agent, `node.xpu` for an xPU agent); a node-wide shared token leaves `agent` undefined.
 */
export type Principal =
  | { kind: 'operator'; name?: string }
  | { kind: 'bmc'; node: string }
  | { kind: 'agent'; node: string; agent?: string };

export function actorOf(who: Principal): Actor {
  switch (who.kind) {
    case 'operator':
      return who.name ? `operator:${who.name}` : 'operator';
    case 'bmc':
      return `bmc:${who.node}`;
    case 'agent':
      return `agent:${who.agent ?? who.node}`;
  }
}

/** The coordinator's own timers and decisions. */
export const COORDINATOR: Actor = 'coordinator';
