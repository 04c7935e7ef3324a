// What goes into and out of each workflow (workflows/*.asl.json), in one place: the kinds, the env
// var that carries each one's ARN (set by CDK, read by lambdas/entry/runtime.ts), the input each
// execution starts with, and the payloads its Tasks hand the workflow functions. Pure: CDK loads it.
import { z } from 'zod';
import { queueWindow } from './budgets.ts';
import { noticeWindow, type StoredReboot } from './reboot.ts';
import { REBOOT_STATUSES, type NodeDef } from './types.ts';

/** One per workflows/<kind>.asl.json. */
export const WORKFLOW_KINDS = ['xpu-reboot', 'host-reboot', 'rollout'] as const;
export type WorkflowKind = (typeof WORKFLOW_KINDS)[number];

/** The workflow that runs a reboot of each kind (the ingest function starts these). */
export const WORKFLOW_OF = { xpu: 'xpu-reboot', host: 'host-reboot' } as const satisfies Record<StoredReboot['kind'], WorkflowKind>;
export const REBOOT_WORKFLOWS = Object.values(WORKFLOW_OF);

/**
 * The env var carrying a workflow's ARN: `xpu-reboot` → `XPU_WORKFLOW_ARN`, `host-reboot` →
 * `HOST_WORKFLOW_ARN`, `drain-rack` → `DRAIN_RACK_WORKFLOW_ARN` (a trailing `-reboot` is dropped:
 * every workflow here is about reboots). CDK names the variable of each ASL file with it.
 */
export function workflowArnEnvName(stem: string): string {
  const base = stem.replace(/-reboot$/, '');
  return `${base.replace(/[^A-Za-z0-9]+/g, '_').toUpperCase()}_WORKFLOW_ARN`;
}

/** workflowArnEnvName of each kind, spelled out so the runtime's env schema is typed. */
export const WORKFLOW_ARN_ENV = {
  'xpu-reboot': 'XPU_WORKFLOW_ARN',
  'host-reboot': 'HOST_WORKFLOW_ARN',
  rollout: 'ROLLOUT_WORKFLOW_ARN',
} as const satisfies Record<WorkflowKind, string>;

/** The part of a function's environment naming workflows; CDK sets those the function is granted. */
export const WorkflowArnEnv = z.object({
  XPU_WORKFLOW_ARN: z.string().optional(),
  HOST_WORKFLOW_ARN: z.string().optional(),
  ROLLOUT_WORKFLOW_ARN: z.string().optional(),
});

/** Each kind's ARN from a parsed environment; '' where the function was not granted it. */
export function workflowArnsFrom(env: z.infer<typeof WorkflowArnEnv>): Record<WorkflowKind, string> {
  return Object.fromEntries(WORKFLOW_KINDS.map((k) => [k, env[WORKFLOW_ARN_ENV[k]] ?? ''])) as Record<WorkflowKind, string>;
}

// --- start inputs ----------------------------------------------------------------------------------

/**
 * The reboot as its ingest has just written it, and the node's claims right after its own: the
 * first PrepareHost await plans and registers from this copy instead of reading both again (one
 * round trip less before the first command). It rides in `window`, which PrepareHost's result
 * replaces, so no later state carries it; the await trusts it only on its first attempt and while
 * it is young (START_COPY_MAX_AGE_MS), and its registration is a conditional write either way.
 */
export const StartCopy = z.object({
  /** When the ingest wrote the reboot (the coordinator's clock). */
  at: z.string(),
  reboot: z.looseObject({ id: z.string(), node: z.string(), version: z.number(), commands: z.record(z.string(), z.unknown()) }),
  /** xPU id → the reboot that holds it, as the ingest's claim left them. */
  xpus: z.record(z.string(), z.string()),
});
export type StartCopy = z.infer<typeof StartCopy>;

/** Older than this, a start copy is not used (a cold function, a resumed execution): the await reads. */
export const START_COPY_MAX_AGE_MS = 2_000;

/** The xPU workflow's input: a queued reboot starts in WaitForBudgetSlot, the others in the notice phase. */
export function xpuWorkflowInput(r: StoredReboot, node: NodeDef, now: Date, fresh?: { xpus: Record<string, string> }) {
  const p = node.policy.xpuReboot;
  const queued = queueWindow(r, now);
  // Only a planned reboot in its notice phase registers in PrepareHost; the others are routed on at once.
  const copy: StartCopy | undefined =
    fresh && !queued && r.mode === 'planned'
      ? { at: now.toISOString(), reboot: r as unknown as StartCopy['reboot'], xpus: fresh.xpus }
      : undefined;
  return {
    rebootId: r.id,
    node: r.node,
    xpu: r.xpu,
    mode: r.mode,
    window: { ...noticeWindow(r, now), ...(queued ?? { signal: 'notified' as const }), ...(copy ? { known: copy } : {}) },
    limits: {
      heartbeatSeconds: p.heartbeatSeconds,
      recoverySeconds: p.recoverySeconds,
      coredumpSeconds: p.coredumpSeconds,
      commandSeconds: p.commandSeconds,
    },
  };
}

export function hostWorkflowInput(r: StoredReboot, node: NodeDef) {
  const p = node.policy.hostReboot;
  return {
    rebootId: r.id,
    node: r.node,
    decision: r.decision ?? 'allowed',
    limits: {
      heartbeatSeconds: p.heartbeatSeconds,
      returnSeconds: p.returnSeconds,
      recoverySeconds: node.policy.xpuReboot.recoverySeconds,
      commandSeconds: p.commandSeconds,
    },
  };
}

export function rolloutWorkflowInput(rolloutId: string) {
  return { rolloutId };
}

// --- Task payloads (what the ASL's Parameters hand the two workflow functions) ----------------------

/** A reboot workflow's callback Task (the await function): register a waiter and send the step's commands. */
export const AwaitInput = z.object({
  taskToken: z.string().min(1),
  rebootId: z.string().min(1),
  /** The reboot's node, where the state passes it (PrepareHost): the Lambda reads the reboot and the node side by side. */
  node: z.string().min(1).optional(),
  step: z.string().min(1),
  waitFor: z.enum(['prepared', 'commands-done', 'xpu-down', 'xpu-ready', 'host-ready', 'xpus-ready', 'budget-slot']),
  status: z.enum(REBOOT_STATUSES).optional(),
  /** The deadline the workflow timed this wait on (notice phase). */
  deadline: z.string().nullable().optional(),
  /** $$.State.EnteredTime of the waiting state. */
  enteredAt: z.string().optional(),
  /** PrepareHost, the xPU workflow's start state: the execution's mode and window, to send other starts on (startRoute). */
  mode: z.string().optional(),
  window: z.looseObject({ signal: z.string().optional(), known: StartCopy.optional() }).optional(),
  /** $$.State.RetryCount: a retried attempt does not trust the start copy. */
  retryCount: z.number().int().nonnegative().optional(),
});

/**
 * The xPU workflow starts in PrepareHost (a Choice before it would cost every planned reboot a
 * state transition). A start that is not a planned notice is answered at once with the signal
 * RouteHostAnswer sends on: queued → WaitForBudgetSlot, crashed → ProtectPcieAndTakeCoreDump,
 * down (unannounced) → WaitForXpuReady, xpu-ready (late recovery) → RestorePcie. Null: prepare.
 */
export function startRoute(p: { step: string; mode?: string; window?: { signal?: string } }): string | null {
  if (p.step !== 'prepare' || p.mode === undefined) return null;
  if (p.window?.signal === 'queued') return 'queued';
  if (p.mode === 'crash') return 'crashed';
  if (p.mode === 'unannounced') return 'down';
  if (p.mode === 'recover-late') return 'xpu-ready';
  return null;
}

/** A reboot workflow's plain Task (the step function): one named change of the reboot. */
export const StepInput = z.object({
  action: z.enum(['proceed', 'proceed-not-taken', 'forced', 'silent-host', 'complete', 'fail', 'deny', 'budget-recheck']),
  rebootId: z.string().min(1),
  reason: z.string().optional(),
  error: z.unknown().optional(),
});

/** The rollout workflow's Tasks, served by the same two functions and told apart by `action`. */
export const RolloutTickInput = z.object({
  action: z.literal('rollout-tick'),
  rolloutId: z.string().min(1),
  /** $$.Execution.Name: which generation ticks (core/rollout.ts TICKS_PER_EXECUTION). */
  execution: z.string().min(1).optional(),
});
export const RolloutAwaitInput = z.object({
  action: z.literal('rollout-await'),
  rolloutId: z.string().min(1),
  taskToken: z.string().min(1),
  enteredAt: z.string().optional(),
});
export const RolloutFailInput = z.object({
  action: z.literal('rollout-fail'),
  rolloutId: z.string().min(1),
  error: z.unknown().optional(),
});
