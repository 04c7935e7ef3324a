// The table's shape shared by the store, the local table and the CDK table (no SDK import: CDK loads it).

/**
 * What gsi1 carries besides its keys: what an agent's long poll needs of its open commands. Reboot
 * items are not projected whole: every change to a reboot would write it twice (table and index),
 * so listings read the index for ids and then the items themselves.
 */
export const GSI1_ATTRIBUTES = [
  'id', 'type', 'rebootId', 'node', 'xpu', 'args', 'deadline', 'agent', 'step', 'status', 'noticePhase', 'createdAt', 'seenAt', 'redeliver',
] as const;
