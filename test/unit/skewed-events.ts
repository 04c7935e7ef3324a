// node-a/dpu0's events as one source sends them: stamped by that source's own clock, which is `skewMs`
// off ours, and received by us `receivedS` seconds after R0 (at once when not given; the model tests' fixtures of disorder).
import type { NativeEvent } from '../../lambdas/core/types.ts';

export function sourceOfNodeA(r0: number, skewMs: number, source: 'redfish' | 'native', by?: string) {
  return (id: string, type: NativeEvent['type'], sentS: number, receivedS = sentS): NativeEvent => ({
    id,
    type,
    node: 'node-a',
    xpu: 'dpu0',
    time: new Date(r0 + skewMs + sentS * 1000).toISOString(),
    data: {},
    source,
    dedupKey: source === 'redfish' ? `node-a:redfish:${id}` : `native:node-a:${id}`,
    receivedAt: new Date(r0 + receivedS * 1000).toISOString(),
    ...(by ? { by } : {}),
  });
}
