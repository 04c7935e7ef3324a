// The JSON Schemas (2020-12) of what the API answers, for GET /openapi.json (components.schemas). Each
// names the fields contract §3/§7 lists as required; other fields stay allowed (a minor version may add
// some, as the compliance report's schema does). test/integration/api-shape-audit-s9.test.ts validates
// the live stack's answers against them with a real validator.
import { reportJsonSchema } from '../core/report/schema.ts';
import { ROLLOUT_STATUSES } from '../core/rollout.ts';
import { BUDGET_DOMAINS, COMMAND_TYPES, REBOOT_STATUSES } from '../core/types.ts';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const str = { type: 'string' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const int0 = { type: 'integer', minimum: 0 } as const;
const nullable = (type: string, extra: object = {}) => ({ type: [type, 'null'], ...extra });
const arrayOf = (items: object) => ({ type: 'array', items });
const obj = (properties: Record<string, unknown>, required: string[] = Object.keys(properties), extra: object = {}) => ({
  type: 'object',
  properties,
  required,
  ...extra,
});

/** `bmc:<node>`, `agent:<agentId>`, `operator` (or `operator:<name>`), `coordinator` (contract 7.1). */
const actor = { type: 'string', pattern: '^(bmc:.+|agent:.+|operator(:.+)?|coordinator)$' };
const COMMAND_STATUSES = ['pending', 'delivered', 'running', 'succeeded', 'failed', 'skipped', 'timed-out'];
const ROLLOUT_ITEM_STATES = ['pending', 'sent', 'rebooting', 'done', 'failed'];
const selector = {
  type: 'object',
  properties: { node: str, rack: str, zone: str, tenant: str },
  additionalProperties: false,
  maxProperties: 1,
};

/** Schema name → JSON Schema; referenced from the responses as `#/components/schemas/<name>`. */
export function responseSchemas(): Record<string, unknown> {
  const { $schema: _s, $id: _i, ...report } = reportJsonSchema();
  const rolloutItem = obj(
    { node: str, xpu: str, state: { enum: ROLLOUT_ITEM_STATES }, rebootId: str, startedAt: time, endedAt: time, reason: str },
    ['node', 'xpu', 'state'],
  );
  return {
    HistoryEntry: obj({ at: time, phase: str, detail: str, by: actor }),
    Extension: obj({ at: time, requested: int0, granted: int0, reason: str, deadline: time }),
    Reboot: obj(
      {
        id: str,
        kind: { enum: ['xpu', 'host'] },
        node: str,
        xpu: nullable('string'),
        status: { enum: [...REBOOT_STATUSES] },
        mode: { enum: ['planned', 'crash', 'unannounced', 'shell', 'ipmi', 'perst', 'other'] },
        reason: str,
        rack: str,
        zone: str,
        tenant: str,
        notifiedAt: time,
        deadline: nullable('string', { format: 'date-time' }),
        noticeSeconds: { type: 'number', minimum: 0 },
        policyNoticeSeconds: { type: 'number', minimum: 0 },
        extensions: arrayOf(ref('Extension')),
        refusals: arrayOf(obj({ at: time, requested: { type: 'number' }, reason: str, code: str }, ['at', 'requested', 'reason'])),
        refusalCount: int0,
        forced: { type: 'boolean' },
        outstanding: arrayOf(str),
        commands: { type: 'object', additionalProperties: obj({ id: str, type: str, agent: str, step: str, status: str, at: time }) },
        denyReason: str,
        endedAt: time,
        history: arrayOf(ref('HistoryEntry')),
      },
      ['id', 'kind', 'node', 'xpu', 'status', 'mode', 'notifiedAt', 'deadline', 'extensions', 'history'],
    ),
    RebootList: obj({ items: arrayOf(ref('Reboot')), next: nullable('string') }),
    Node: obj({
      id: str,
      rack: nullable('string'),
      zone: nullable('string'),
      provisionedTenant: nullable('string'),
      xpus: arrayOf(obj({ id: str, persistentPower: { type: 'boolean' } })),
      activeReboots: arrayOf(ref('Reboot')),
    }),
    EventsAccepted: obj({ accepted: int0, ignored: int0, id: str }, ['accepted', 'ignored']),
    ExtensionGrant: obj({ granted: { type: 'integer', minimum: 1 }, deadline: time }),
    Command: obj({
      id: str,
      type: { enum: [...COMMAND_TYPES] },
      rebootId: str,
      node: str,
      xpu: nullable('string'),
      args: { type: 'object' },
      deadline: time,
    }),
    CommandList: arrayOf(ref('Command')),
    CommandResultAck: obj({ id: str, status: { enum: COMMAND_STATUSES }, duplicate: { type: 'boolean' } }, ['id', 'status']),
    Hold: obj(
      {
        id: str,
        selector: { ...selector, minProperties: 1 },
        reason: str,
        until: time,
        createdAt: time,
        by: actor,
        active: { type: 'boolean' },
        nodes: arrayOf(str),
      },
      ['id', 'selector', 'reason', 'createdAt', 'active', 'nodes'],
    ),
    HoldList: obj({ items: arrayOf(ref('Hold')) }),
    RolloutPlan: arrayOf(obj({ node: str, xpu: str })),
    RolloutStarted: {
      anyOf: [
        obj({ id: str, status: { enum: [...ROLLOUT_STATUSES] }, plan: ref('RolloutPlan') }),
        obj({ id: { type: 'null' }, status: { const: 'dry-run' }, dryRun: { const: true }, plan: ref('RolloutPlan') }),
      ],
    },
    Rollout: obj(
      {
        id: str,
        status: { enum: [...ROLLOUT_STATUSES] },
        selector,
        maxUnavailable: { type: 'integer', minimum: 1 },
        maxFailures: { type: 'integer', minimum: 1 },
        reason: str,
        noticeSeconds: { type: 'integer', minimum: 1 },
        createdAt: time,
        endedAt: time,
        blocked: str,
        plan: ref('RolloutPlan'),
        done: arrayOf(rolloutItem),
        pending: arrayOf(rolloutItem),
        failed: arrayOf(rolloutItem),
        inFlight: int0,
        history: arrayOf(ref('HistoryEntry')),
      },
      ['id', 'status', 'selector', 'maxUnavailable', 'reason', 'createdAt', 'plan', 'done', 'pending', 'failed'],
    ),
    RolloutList: obj({ items: arrayOf(ref('Rollout')) }),
    Fleet: obj({
      generatedAt: time,
      racks: arrayOf(
        obj(
          {
            rack: str,
            nodes: arrayOf(
              obj({ id: str, state: { enum: ['idle', 'queued', 'xpu-rebooting', 'host-rebooting'] }, reboots: { type: 'array' } }, [
                'id',
                'state',
              ]),
            ),
          },
          ['rack', 'nodes'],
        ),
      ),
      totals: obj({ nodes: int0, inFlight: int0, queued: int0, unavailableNodes: int0 }),
      budgets: arrayOf(obj({ per: { enum: [...BUDGET_DOMAINS] }, key: str, maxUnavailable: int0, unavailable: int0 })),
      holds: arrayOf(obj({ id: str, selector: { ...selector, minProperties: 1 }, reason: str, until: time }, ['id', 'selector', 'reason'])),
      rollouts: arrayOf(obj({ id: str, status: { enum: [...ROLLOUT_STATUSES] } })),
      timeline: { type: 'array' },
    }),
    Health: obj({ ok: { const: true } }),
    HealthDown: obj({ ok: { const: false }, unavailable: arrayOf(str), dependencies: { type: 'object', additionalProperties: str } }, [
      'ok',
      'unavailable',
    ]),
    DlqList: obj({ items: { type: 'array' }, count: int0 }),
    DlqRedriveResult: obj({ redriven: int0, notFound: int0, ids: arrayOf(str), missing: arrayOf(str), more: { type: 'boolean' } }),
    ComplianceReport: report,
  };
}
