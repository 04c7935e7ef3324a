// The agent's options in one table: the CLI flags, their env variables and config-file keys come from it (no zod here: cheap to load).

export interface AgentOption {
  /** camelCase: the config-file key and commander's attribute name. */
  key: string;
  flag: string;
  env: string;
  help: string;
  boolean?: true;
}

export const AGENT_OPTIONS: readonly AgentOption[] = Object.freeze([
  {
    key: 'server',
    flag: '--server <url>',
    env: 'REBOOT_AGENT_SERVER',
    help: 'base URL of the coordinator API, e.g. https://reboots.example.com',
  },
  {
    key: 'agent',
    flag: '--agent <id>',
    env: 'REBOOT_AGENT_ID',
    help: 'this agent: the node id on a host (node-a), node.xpu on an xPU (node-a.dpu0)',
  },
  {
    key: 'token',
    flag: '--token <token>',
    env: 'REBOOT_AGENT_TOKEN',
    help: "the node's agent token (prefer --token-file: a flag shows in ps, a variable in /proc/PID/environ)",
  },
  {
    key: 'tokenFile',
    flag: '--token-file <file>',
    env: 'REBOOT_AGENT_TOKEN_FILE',
    help: 'read the token from this file (e.g. a systemd credential)',
  },
  {
    key: 'caFile',
    flag: '--ca-file <file>',
    env: 'REBOOT_AGENT_CA_FILE',
    help: 'PEM bundle of the CAs that may sign the server certificate (default: the system CAs)',
  },
  {
    key: 'clientCert',
    flag: '--client-cert <file>',
    env: 'REBOOT_AGENT_CLIENT_CERT',
    help: 'PEM client certificate for mutual TLS (with --client-key)',
  },
  { key: 'clientKey', flag: '--client-key <file>', env: 'REBOOT_AGENT_CLIENT_KEY', help: 'PEM private key of --client-cert' },
  {
    key: 'hooks',
    flag: '--hooks <dir>',
    env: 'REBOOT_AGENT_HOOKS',
    help: 'directory of hook executables, one per command type (DIR/protect-pcie, ...)',
  },
  {
    key: 'state',
    flag: '--state <dir>',
    env: 'REBOOT_AGENT_STATE',
    help: 'state root; the journal goes to <dir>/<agent> (default $XDG_STATE_HOME/rebootctl or ~/.local/state/rebootctl)',
  },
  { key: 'wait', flag: '--wait <seconds>', env: 'REBOOT_AGENT_WAIT', help: 'long-poll wait, 0-30 (default 20; 0 with --once)' },
  {
    key: 'transport',
    flag: '--transport <mode>',
    env: 'REBOOT_AGENT_TRANSPORT',
    help: 'auto (push channel when up, else long polls), mqtt (push channel only) or poll (default auto)',
  },
  {
    key: 'mqttUrl',
    flag: '--mqtt-url <url>',
    env: 'REBOOT_AGENT_MQTT_URL',
    help: 'the push channel: mqtt://host:port (local stack) or wss://<iot endpoint>/mqtt?x-amz-customauthorizer-name=... (AWS)',
  },
  {
    key: 'config',
    flag: '--config <file>',
    env: 'REBOOT_AGENT_CONFIG',
    help: 'YAML or JSON file with any of these options as camelCase keys (flags and env win)',
  },
  { key: 'once', flag: '--once', env: 'REBOOT_AGENT_ONCE', help: 'poll once, run what came, deliver the results, exit', boolean: true },
  {
    key: 'heartbeatSeconds',
    flag: '--heartbeat-seconds <n>',
    env: 'REBOOT_AGENT_HEARTBEAT_SECONDS',
    help: '"running" heartbeat interval while a hook runs (default 5)',
  },
  {
    key: 'maxOutputBytes',
    flag: '--max-output-bytes <n>',
    env: 'REBOOT_AGENT_MAX_OUTPUT_BYTES',
    help: 'cap of the reported hook output; the tail is kept (default 65536)',
  },
  {
    key: 'killGraceSeconds',
    flag: '--kill-grace-seconds <n>',
    env: 'REBOOT_AGENT_KILL_GRACE_SECONDS',
    help: 'SIGTERM to SIGKILL grace when a hook is killed (default 5)',
  },
  {
    key: 'stopGraceSeconds',
    flag: '--stop-grace-seconds <n>',
    env: 'REBOOT_AGENT_STOP_GRACE_SECONDS',
    help: 'on SIGTERM, how long a running hook may still take (default 30; never past its deadline)',
  },
  {
    key: 'deliverTimeoutSeconds',
    flag: '--deliver-timeout-seconds <n>',
    env: 'REBOOT_AGENT_DELIVER_TIMEOUT_SECONDS',
    help: 'on exit, how long to keep trying to deliver results (default 10)',
  },
  {
    key: 'requestTimeoutSeconds',
    flag: '--request-timeout-seconds <n>',
    env: 'REBOOT_AGENT_REQUEST_TIMEOUT_SECONDS',
    help: 'timeout of one HTTP request, added to the long-poll wait (default 15)',
  },
  {
    key: 'backoffInitialSeconds',
    flag: '--backoff-initial-seconds <n>',
    env: 'REBOOT_AGENT_BACKOFF_INITIAL_SECONDS',
    help: 'first retry delay when the server is unreachable (default 0.5)',
  },
  {
    key: 'backoffMaxSeconds',
    flag: '--backoff-max-seconds <n>',
    env: 'REBOOT_AGENT_BACKOFF_MAX_SECONDS',
    help: 'retry delay cap (default 30)',
  },
  {
    key: 'journalMaxEntries',
    flag: '--journal-max-entries <n>',
    env: 'REBOOT_AGENT_JOURNAL_MAX_ENTRIES',
    help: 'delivered commands remembered (default 10000)',
  },
  {
    key: 'journalMaxAgeDays',
    flag: '--journal-max-age-days <n>',
    env: 'REBOOT_AGENT_JOURNAL_MAX_AGE_DAYS',
    help: 'days a delivered command is remembered (default 30)',
  },
  { key: 'logLevel', flag: '--log-level <level>', env: 'REBOOT_AGENT_LOG_LEVEL', help: 'debug, info, warn or error (default info)' },
] satisfies AgentOption[]);
