// Which hooks an agent must have: the role follows from the agent id (`node` host, `node.xpu` xPU), docs/edge-kit.md.

export type AgentRole = 'host' | 'xpu';

/**
 * Hooks without which the coordinator would go on unprepared: a missing `protect-pcie` reported as
 * `skipped` counts as done and sends `proceed-reboot` onto an unprotected host. These are reported
 * `failed` when missing; every other missing hook stays `skipped`.
 */
export const REQUIRED_HOOKS: Readonly<Record<AgentRole, readonly string[]>> = Object.freeze({
  host: Object.freeze(['migrate-workloads', 'protect-pcie', 'restore-pcie', 'resume-workloads']),
  xpu: Object.freeze(['free-host-context', 'reprovision']),
});

/** `node-a` is the host agent, `node-a.dpu0` the agent of xPU dpu0 (docs/api.md). */
export function roleOf(agentId: string): AgentRole {
  return agentId.includes('.') ? 'xpu' : 'host';
}

export function isRequiredHook(agentId: string, type: string): boolean {
  return REQUIRED_HOOKS[roleOf(agentId)].includes(type);
}

/** REBOOT_HOOK_DRY_RUN=1 in the agent's environment: hooks only print what they would do. */
export const DRY_RUN_ENV = 'REBOOT_HOOK_DRY_RUN';
