// The table's shape shared by the store, the local table and the CDK table (no SDK import: CDK loads it).

/**
 * What gsi1 carries besides its keys: what an agent's long poll needs of its open commands. Reboot
 * items are not projected whole: every change to a reboot would write it twice (table and index),
 * so listings read the index for ids and then the items themselves.
 */
export const GSI1_ATTRIBUTES = [
  'id',
  'type',
  'rebootId',
  'node',
  'xpu',
  'args',
  'deadline',
  'agent',
  'step',
  'status',
  'noticePhase',
  'createdAt',
  'seenAt',
  'redeliver',
] as const;

/**
 * gsi2 (gsi2pk `NODE#<node>`, gsi2sk `<notifiedAt>#<id>`): a node's reboots, newest first, without
 * reading the fleet's. Only what a listing filters on is projected; the items are read by id.
 */
export const GSI2_ATTRIBUTES = ['id', 'status'] as const;

/**
 * gsi3, sparse (gsi3pk `ACTIVE#<0..7>`, gsi3sk `<notifiedAt>#<kind>#<id>`): the reboots not ended, and
 * only those (an ended reboot's item has no gsi3 keys). The reconciler reads it instead of the fleet
 * listing once per active status. A table without it (a local DATA_DIR from before) falls back to that.
 */
export const GSI3_ATTRIBUTES = ['id', 'status'] as const;
