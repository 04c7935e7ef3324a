// Creates and finds a node's Redfish EventDestination on its BMC, over an injected HTTP port (the CLI supplies node:https).

export const SUBSCRIPTIONS_PATH = '/redfish/v1/EventService/Subscriptions';
export const WEBHOOK_PATH = '/v1/events/redfish';
/** Subscription properties that only narrow what the BMC sends; a BMC that rejects one still works without them. */
export const FILTER_PROPERTIES = ['EventTypes', 'RegistryPrefixes', 'ResourceTypes'] as const;
/**
 * EventTypes is deprecated and bmcweb rejects it, but the DMTF mockup server pushes only to subscriptions whose
 * EventTypes include the event's EventType, so it is sent and dropped on rejection. MetricReport is left out.
 */
export const DEFAULT_EVENT_TYPES = ['Alert', 'StatusChange', 'ResourceUpdated', 'ResourceAdded', 'ResourceRemoved', 'Other'];

export interface HttpRequest {
  method: 'GET' | 'POST' | 'DELETE';
  /** A path on the BMC (`/redfish/v1/...`) or an absolute URL (a Location header). */
  path: string;
  body?: unknown;
}
export interface HttpResponse {
  status: number;
  headers: Readonly<Record<string, string | undefined>>;
  /** Parsed JSON, the raw text when it is not JSON, or undefined when empty. */
  body: unknown;
}
export type RedfishHttp = (req: HttpRequest) => Promise<HttpResponse>;

export class BmcAuthFailed extends Error {
  override readonly name = 'BmcAuthFailed';
}
export class SubscriptionRejected extends Error {
  override readonly name = 'SubscriptionRejected';
}
export class BmcProtocolError extends Error {
  override readonly name = 'BmcProtocolError';
}
/** Thrown by the HTTP port when the BMC cannot be reached (DNS, TCP, TLS, timeout). */
export class BmcUnreachable extends Error {
  override readonly name = 'BmcUnreachable';
}

export interface SubscriptionSpec {
  /** Base URL of the coordinator's API (`https://api.example.com/prod`). */
  server: string;
  bmcToken: string;
  /** Put the token into the Destination as `?access_token=` (RFC 6750 §2.3) for BMCs that send no HttpHeaders. */
  tokenInUrl: boolean;
  /** The node id, or `node.xpu` for an xPU's own BMC. */
  context: string;
  registryPrefixes?: readonly string[];
  resourceTypes?: readonly string[];
  eventTypes?: readonly string[];
}

export function webhookDestination(server: string, bmcToken: string, tokenInUrl: boolean): string {
  const base = `${server.replace(/\/+$/, '')}${WEBHOOK_PATH}`;
  return tokenInUrl ? `${base}?access_token=${encodeURIComponent(bmcToken)}` : base;
}

/** The Destination with the token hidden, for output. */
export function redactDestination(destination: string): string {
  return destination.replace(/([?&]access_token=)[^&]*/, '$1***');
}

export function subscriptionBody(spec: SubscriptionSpec, withFilters = true): Record<string, unknown> {
  const body: Record<string, unknown> = {
    Destination: webhookDestination(spec.server, spec.bmcToken, spec.tokenInUrl),
    Context: spec.context,
    Protocol: 'Redfish',
    SubscriptionType: 'RedfishEvent',
    EventFormatType: 'Event',
    HttpHeaders: [{ Authorization: `Bearer ${spec.bmcToken}` }],
  };
  if (withFilters) {
    const eventTypes = spec.eventTypes ?? DEFAULT_EVENT_TYPES;
    if (eventTypes.length > 0) body.EventTypes = [...eventTypes];
    if (spec.registryPrefixes && spec.registryPrefixes.length > 0) body.RegistryPrefixes = [...spec.registryPrefixes];
    if (spec.resourceTypes && spec.resourceTypes.length > 0) body.ResourceTypes = [...spec.resourceTypes];
  }
  return body;
}

/** The filter properties a 400 names: bmcweb answers PropertyUnknown / PropertyValueNotInList with the name in MessageArgs. */
export function rejectedFilters(res: HttpResponse, sent: Record<string, unknown>): string[] {
  if (res.status !== 400) return [];
  const text = typeof res.body === 'string' ? res.body : JSON.stringify(res.body ?? '');
  return FILTER_PROPERTIES.filter((p) => p in sent && text.includes(p));
}

export function is2xx(status: number): boolean {
  return status >= 200 && status < 300;
}

/** Same scheme, host, port and path; the query is left out because some BMCs redact or drop it on GET. */
export function sameDestination(a: unknown, b: string): boolean {
  if (typeof a !== 'string') return false;
  try {
    const x = new URL(a);
    const y = new URL(b);
    const path = (u: URL) => u.pathname.replace(/\/+$/, '');
    return x.protocol === y.protocol && x.host.toLowerCase() === y.host.toLowerCase() && path(x) === path(y);
  } catch {
    return a === b;
  }
}

export interface BmcSubscription {
  uri: string;
  destination?: string;
  context?: string;
}

function errorText(res: HttpResponse): string {
  const b = res.body as
    | { error?: { message?: unknown; '@Message.ExtendedInfo'?: Array<{ Message?: unknown; MessageId?: unknown }> } }
    | undefined;
  const info = b?.error?.['@Message.ExtendedInfo']?.map((i) => i.Message ?? i.MessageId).filter(Boolean) ?? [];
  const main = typeof b?.error?.message === 'string' ? b.error.message : typeof res.body === 'string' ? res.body.slice(0, 300) : '';
  return [main, ...info].filter(Boolean).join('; ') || `HTTP ${res.status}`;
}

function ensureAuthorized(res: HttpResponse, what: string): void {
  if (res.status === 401 || res.status === 403) throw new BmcAuthFailed(`the BMC refused the credentials (HTTP ${res.status}) on ${what}`);
}

/** Every EventDestination on the BMC: the collection, then each member (BMCs rarely expand it). */
export async function listSubscriptions(http: RedfishHttp): Promise<BmcSubscription[]> {
  const out: BmcSubscription[] = [];
  let next: string | undefined = SUBSCRIPTIONS_PATH;
  for (let page = 0; next && page < 50; page++) {
    const res = await http({ method: 'GET', path: next });
    ensureAuthorized(res, `GET ${next}`);
    if (!is2xx(res.status)) throw new BmcProtocolError(`GET ${next} answered HTTP ${res.status}: ${errorText(res)}`);
    const body = res.body as { Members?: unknown; 'Members@odata.nextLink'?: unknown } | undefined;
    if (!body || !Array.isArray(body.Members)) throw new BmcProtocolError(`GET ${next} returned no Members array`);
    for (const m of body.Members as Array<Record<string, unknown>>) {
      const uri = typeof m?.['@odata.id'] === 'string' ? (m['@odata.id'] as string) : undefined;
      if (!uri) continue;
      let member: Record<string, unknown> = m;
      if (!('Destination' in m)) {
        const r = await http({ method: 'GET', path: uri });
        ensureAuthorized(r, `GET ${uri}`);
        // A member deleted between the two GETs is simply gone.
        if (r.status === 404) continue;
        if (!is2xx(r.status)) throw new BmcProtocolError(`GET ${uri} answered HTTP ${r.status}: ${errorText(r)}`);
        member = (r.body as Record<string, unknown>) ?? {};
      }
      out.push({
        uri,
        ...(typeof member.Destination === 'string' ? { destination: member.Destination } : {}),
        ...(typeof member.Context === 'string' ? { context: member.Context } : {}),
      });
    }
    next = typeof body['Members@odata.nextLink'] === 'string' ? body['Members@odata.nextLink'] : undefined;
  }
  return out;
}

export function findOurs(subs: readonly BmcSubscription[], spec: SubscriptionSpec): BmcSubscription[] {
  const dest = webhookDestination(spec.server, spec.bmcToken, spec.tokenInUrl);
  return subs.filter((s) => s.context === spec.context && sameDestination(s.destination, dest));
}

export type SubscribeOutcome =
  | { kind: 'exists'; uri: string }
  | { kind: 'created'; uri?: string; status: number; filtered: boolean; rejectedFilters: string[]; replaced: string[]; warnings: string[] };

/**
 * Creates the subscription. An existing one with the same Destination and Context is kept unless `replace`
 * (a rotated token is not visible on GET: HttpHeaders read back empty). Any 2xx is success: the DMTF mockup
 * server answers 204 with only a Location header. A 400 naming a filter property is retried once without filters.
 */
export async function subscribe(
  http: RedfishHttp,
  spec: SubscriptionSpec,
  opts: { replace?: boolean; filters?: boolean } = {},
): Promise<SubscribeOutcome> {
  const warnings: string[] = [];
  let ours: BmcSubscription[] = [];
  try {
    ours = findOurs(await listSubscriptions(http), spec);
  } catch (err) {
    // Listing is only a guard against duplicates; a BMC with a quirky collection can still take the POST.
    if (!(err instanceof BmcProtocolError)) throw err;
    warnings.push(`could not list existing subscriptions (${err.message}); a duplicate may result`);
  }
  if (ours.length > 0 && !opts.replace) return { kind: 'exists', uri: ours[0].uri };
  const replaced: string[] = [];
  for (const s of ours) {
    const r = await http({ method: 'DELETE', path: s.uri });
    ensureAuthorized(r, `DELETE ${s.uri}`);
    if (!is2xx(r.status) && r.status !== 404) throw new SubscriptionRejected(`DELETE ${s.uri} answered HTTP ${r.status}: ${errorText(r)}`);
    replaced.push(s.uri);
  }
  const filters = opts.filters ?? true;
  let body = subscriptionBody(spec, filters);
  let res = await http({ method: 'POST', path: SUBSCRIPTIONS_PATH, body });
  ensureAuthorized(res, `POST ${SUBSCRIPTIONS_PATH}`);
  let rejected: string[] = [];
  if (!is2xx(res.status)) {
    rejected = rejectedFilters(res, body);
    if (rejected.length === 0) throw new SubscriptionRejected(`POST ${SUBSCRIPTIONS_PATH} answered HTTP ${res.status}: ${errorText(res)}`);
    body = subscriptionBody(spec, false);
    res = await http({ method: 'POST', path: SUBSCRIPTIONS_PATH, body });
    ensureAuthorized(res, `POST ${SUBSCRIPTIONS_PATH}`);
    if (!is2xx(res.status)) {
      throw new SubscriptionRejected(
        `POST ${SUBSCRIPTIONS_PATH} without filters (the BMC rejected ${rejected.join(', ')}) answered HTTP ${res.status}: ${errorText(res)}`,
      );
    }
  }
  const location = res.headers.location ?? (res.body as { '@odata.id'?: unknown } | undefined)?.['@odata.id'];
  return {
    kind: 'created',
    ...(typeof location === 'string' ? { uri: location } : {}),
    status: res.status,
    filtered: filters && rejected.length === 0,
    rejectedFilters: rejected,
    replaced,
    warnings,
  };
}

export type CheckOutcome = { kind: 'present'; uri: string; total: number } | { kind: 'missing'; total: number };

export async function checkSubscription(http: RedfishHttp, spec: SubscriptionSpec): Promise<CheckOutcome> {
  const subs = await listSubscriptions(http);
  const ours = findOurs(subs, spec);
  return ours.length > 0 ? { kind: 'present', uri: ours[0].uri, total: subs.length } : { kind: 'missing', total: subs.length };
}
