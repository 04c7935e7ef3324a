// The Redfish → native event mapping as data: the shipped YAML plus an operator file, validated, indexed by registry and key.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { NATIVE_EVENT_TYPES, type NativeEventType } from '../types.ts';

export class MappingFileInvalid extends Error {
  override readonly name = 'MappingFileInvalid';
}

/**
 * The shipped defaults. From the sources it sits three folders up; in an esbuild bundle `import.meta.url` is the
 * bundle itself, and the CDK copies the file to `$LAMBDA_TASK_ROOT/config/`, next to it.
 */
export function defaultMappingFile(): string {
  const candidates = [
    fileURLToPath(new URL('../../../config/redfish-mapping.yaml', import.meta.url)),
    fileURLToPath(new URL('./config/redfish-mapping.yaml', import.meta.url)),
    ...(process.env.LAMBDA_TASK_ROOT ? [join(process.env.LAMBDA_TASK_ROOT, 'config', 'redfish-mapping.yaml')] : []),
    join(process.cwd(), 'config', 'redfish-mapping.yaml'),
  ];
  return candidates.find((f) => existsSync(f)) ?? candidates[0];
}

export const DATA_FIELDS = ['noticeSeconds', 'reason', 'method', 'tenant'] as const;
export type DataField = (typeof DATA_FIELDS)[number];
export const HOST_REBOOT_METHODS = ['shell', 'ipmi', 'perst'] as const;
export type HostRebootMethod = (typeof HOST_REBOOT_METHODS)[number];
export type Target = 'host' | 'xpu';

export interface Condition {
  arg: number;
  /** Lower-cased; compared case-insensitively because Cray and others disagree on `Off`/`OFF`. */
  equals: readonly string[];
}

export interface MappingRule {
  /** Registry prefixes this rule applies to; null = a bare MessageId (older iDRAC: `SYS1001`). */
  registries: ReadonlyArray<string | null>;
  message: string;
  /** Native type per resolved target; a missing target means the record is ignored for it. */
  types: Readonly<Partial<Record<Target, NativeEventType>>>;
  /** Set instead of types: the record is recognised and deliberately ignored, with this reason. */
  ignore?: string;
  args: Readonly<Partial<Record<DataField, number>>>;
  data: Readonly<Partial<Record<DataField, string | number>>>;
  when: readonly Condition[];
  /** MessageArgs index holding the resource URI, used when OriginOfCondition is absent (ResourceEvent %1, Cray). */
  originFromArg?: number;
  /** The target when neither origin nor Context says: the host, the node's only xPU, or none (ignored). */
  withoutOrigin: Target | 'ignore';
  /** `file:line` of the rule, so an ignored/accepted record can be traced to it. */
  source: string;
}

export interface Mapping {
  readonly rules: readonly MappingRule[];
  readonly files: readonly string[];
  readonly byKey: ReadonlyMap<string, readonly MappingRule[]>;
}

const name = z.string().regex(/^[A-Za-z0-9_]+$/, 'letters, digits and _ only (no dots, no version)');
const argIndex = z.number().int().min(0).max(31);
const eventType = z.enum(NATIVE_EVENT_TYPES);
const hostType = z.enum(NATIVE_EVENT_TYPES.filter((t) => t.startsWith('host.')) as [NativeEventType, ...NativeEventType[]]);
const ConditionSchema = z.strictObject({
  arg: argIndex,
  equals: z.union([z.string(), z.array(z.string()).min(1)]),
});

const RuleSchema = z
  .strictObject({
    registry: z.union([name, z.null(), z.array(z.union([name, z.null()])).min(1)], {
      error: 'registry: a prefix such as ResourceEvent, null for bare MessageIds (Dell), or a list of those',
    }),
    message: name,
    origin: z.enum(['host', 'xpu', 'any']).optional(),
    type: z
      .union([eventType, z.strictObject({ host: hostType.optional(), xpu: eventType.optional() })], {
        error: `type: one of ${NATIVE_EVENT_TYPES.join(', ')}, or {host: <host.* type>, xpu: <type>}`,
      })
      .optional(),
    ignore: z.string().min(1).optional(),
    args: z.strictObject({ noticeSeconds: argIndex, reason: argIndex, method: argIndex, tenant: argIndex }).partial().optional(),
    data: z
      .strictObject({
        noticeSeconds: z.number().positive().finite(),
        reason: z.string().min(1).max(1024),
        method: z.enum(HOST_REBOOT_METHODS),
        tenant: z.string().min(1).max(256),
      })
      .partial()
      .optional(),
    when: z.union([ConditionSchema, z.array(ConditionSchema)]).optional(),
    originFromArg: argIndex.optional(),
    withoutOrigin: z.enum(['host', 'xpu', 'ignore']).optional(),
    note: z.string().optional(),
  })
  .superRefine((r, ctx) => {
    if ((r.type === undefined) === (r.ignore === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'a rule needs exactly one of type or ignore', path: ['type'] });
      return;
    }
    if (typeof r.type === 'string' && r.type.startsWith('xpu.') && r.origin && r.origin !== 'xpu') {
      ctx.addIssue({ code: 'custom', message: `type ${r.type} is about an xPU: origin must be xpu`, path: ['origin'] });
    }
    const t = resolveTypes(r.type, r.origin);
    if (r.type !== undefined && !t.host && !t.xpu)
      ctx.addIssue({ code: 'custom', message: "the type gives no native type for the rule's origin", path: ['type'] });
    if (r.type !== undefined && (r.withoutOrigin === 'host' || r.withoutOrigin === 'xpu') && !t[r.withoutOrigin]) {
      ctx.addIssue({
        code: 'custom',
        message: `withoutOrigin: ${r.withoutOrigin}, but the rule has no type for the ${r.withoutOrigin}`,
        path: ['withoutOrigin'],
      });
    }
  });

const MappingFileSchema = z.strictObject({
  version: z.literal(1).optional(),
  rules: z.array(RuleSchema),
});

type RawRule = z.infer<typeof RuleSchema>;

function resolveTypes(type: RawRule['type'], origin: RawRule['origin']): Partial<Record<Target, NativeEventType>> {
  if (type === undefined) return {};
  if (typeof type === 'string') {
    if (type.startsWith('xpu.')) return { xpu: type };
    // A host-level type (host.reboot.requested) may be reported from either side: the host's BMC or the xPU (PERST#).
    return { ...(origin !== 'xpu' ? { host: type } : {}), ...(origin !== 'host' ? { xpu: type } : {}) };
  }
  return { ...(type.host && origin !== 'xpu' ? { host: type.host } : {}), ...(type.xpu && origin !== 'host' ? { xpu: type.xpu } : {}) };
}

function compileRule(r: RawRule, source: string): MappingRule {
  const registries = Array.isArray(r.registry) ? r.registry : [r.registry];
  const types = resolveTypes(r.type, r.origin);
  const conds = r.when === undefined ? [] : Array.isArray(r.when) ? r.when : [r.when];
  // Only the product's own messages may default to the only xPU: a vendor message without origin is as
  // likely to come from the host's BMC, and guessing "xPU" there would invent an xPU crash.
  const withoutOrigin = r.withoutOrigin ?? (types.host ? 'host' : 'ignore');
  return Object.freeze({
    registries: Object.freeze([...new Set(registries)]),
    message: r.message,
    types: Object.freeze(types),
    ...(r.ignore !== undefined ? { ignore: r.ignore } : {}),
    args: Object.freeze({ ...(r.args ?? {}) }),
    data: Object.freeze({ ...(r.data ?? {}) }),
    when: Object.freeze(
      conds.map((c) =>
        Object.freeze({
          arg: c.arg,
          equals: Object.freeze((Array.isArray(c.equals) ? c.equals : [c.equals]).map((e) => e.trim().toLowerCase())),
        }),
      ),
    ),
    ...(r.originFromArg !== undefined ? { originFromArg: r.originFromArg } : {}),
    withoutOrigin,
    source,
  });
}

function lineOf(doc: ReturnType<typeof parseDocument>, lines: LineCounter, path: readonly PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = (node as YamlNode | null)?.range?.[0];
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === key);
      if (!pair) break;
      offset = (pair.key as YamlNode | null)?.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
      offset = (node as YamlNode | null)?.range?.[0] ?? offset;
    } else break;
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

/** Parses one mapping file's text; `source` names the file in errors and in each rule's `source`. */
export function parseMapping(text: string, source: string): MappingRule[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const line = err.linePos?.[0]?.line ?? (err.pos?.[0] !== undefined ? lines.linePos(err.pos[0]).line : undefined);
    throw new MappingFileInvalid(`${source}${line ? `:${line}` : ''}: not valid YAML: ${err.message.split('\n')[0]}`);
  }
  const parsed = MappingFileSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    // A misspelt key also makes the real one "missing": report the misspelling, it is the cause.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0];
    let path: PropertyKey[] = [...issue.path];
    let what = issue.message;
    if (issue.code === 'unrecognized_keys') {
      path = [...issue.path, issue.keys[0]];
      what = `unknown key '${issue.keys[0]}'`;
    } else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
      what = `missing key '${String(path[path.length - 1])}'`;
      path = path.slice(0, -1);
    }
    const line = lineOf(doc, lines, path);
    const where = path.length ? ` at ${path.map(String).join('.')}` : '';
    throw new MappingFileInvalid(`${source}${line ? `:${line}` : ''}: ${what}${where}`);
  }
  const rules = parsed.data.rules.map((r, i) => compileRule(r, `${source}:${lineOf(doc, lines, ['rules', i]) ?? `rules.${i}`}`));
  // Within one file, a rule after an unconditional one for the same message can never match: surely a mistake.
  const catchAll = new Map<string, MappingRule>();
  for (const rule of rules) {
    for (const reg of rule.registries) {
      const k = indexKey(reg, rule.message);
      const first = catchAll.get(k);
      if (first)
        throw new MappingFileInvalid(
          `${rule.source}: this rule is never used: the rule at ${first.source} matches ${reg ?? '(bare)'} ${rule.message} first`,
        );
      if (rule.when.length === 0) catchAll.set(k, rule);
    }
  }
  return rules;
}

function indexKey(registry: string | null, key: string): string {
  // Prefixes compare case-insensitively: Dell documents `iDRAC` and sends `IDRAC`.
  return `${registry === null ? '' : registry.toLowerCase()}|${key}`;
}

/** Builds the lookup; earlier rules win, so pass the operator's rules before the defaults. */
export function compileMapping(rules: readonly MappingRule[], files: readonly string[] = []): Mapping {
  const byKey = new Map<string, MappingRule[]>();
  for (const rule of rules) {
    for (const reg of rule.registries) {
      const k = indexKey(reg, rule.message);
      const list = byKey.get(k) ?? [];
      list.push(rule);
      byKey.set(k, list);
    }
  }
  return Object.freeze({ rules: Object.freeze([...rules]), files: Object.freeze([...files]), byKey });
}

function readMappingFile(path: string, display = path): MappingRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MappingFileInvalid(`${display}: cannot read the Redfish mapping file (${(err as Error).message})`);
  }
  return parseMapping(text, display);
}

/**
 * The shipped defaults plus, when given, an operator file whose rules take precedence (first match wins).
 * `extraFile` undefined → `REDFISH_MAPPING_FILE` from the environment; null → defaults only.
 */
export function loadMapping(extraFile?: string | null): Mapping {
  const extra = extraFile === undefined ? process.env.REDFISH_MAPPING_FILE || undefined : (extraFile ?? undefined);
  const defaultFile = defaultMappingFile();
  const defaults = readMappingFile(defaultFile, 'config/redfish-mapping.yaml');
  if (!extra) return compileMapping(defaults, [defaultFile]);
  return compileMapping([...readMappingFile(extra), ...defaults], [extra, defaultFile]);
}

/** The rules for a MessageId's registry and key, in precedence order. */
export function rulesFor(mapping: Mapping, registry: string | null, key: string): readonly MappingRule[] {
  return mapping.byKey.get(indexKey(registry, key)) ?? [];
}

export function conditionHolds(cond: Condition, args: readonly unknown[]): boolean {
  const v = args[cond.arg];
  if (typeof v !== 'string' && typeof v !== 'number') return false;
  return cond.equals.includes(String(v).trim().toLowerCase());
}

/** Registry prefixes that lead to a native event: what a subscription's RegistryPrefixes filter should let through. */
export function mappedRegistryPrefixes(mapping: Mapping): string[] {
  const out = new Map<string, string>();
  for (const r of mapping.rules) {
    if (r.ignore !== undefined) continue;
    for (const reg of r.registries) if (reg !== null && !out.has(reg.toLowerCase())) out.set(reg.toLowerCase(), reg);
  }
  return [...out.values()];
}

/** True when a rule matches bare MessageIds, which a RegistryPrefixes filter would drop. */
export function mapsBareMessageIds(mapping: Mapping): boolean {
  return mapping.rules.some((r) => r.ignore === undefined && r.registries.includes(null));
}
