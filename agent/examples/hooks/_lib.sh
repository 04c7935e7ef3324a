# shellcheck shell=bash
# Shared helpers of the EXAMPLE hooks: config loading, dry run, command args, PCI lookups. Adapt to your fleet.
#
# Every hook sources this file. It reads:
#   the command JSON on stdin (as sent by the agent), and env REBOOT_ID COMMAND_ID NODE_ID XPU_ID DEADLINE;
#   REBOOT_HOOK_CONFIG   site settings, default /etc/rebootctl/hooks.env (see hooks.env.example);
#   REBOOT_HOOK_DRY_RUN  1: print what would be done, change nothing;
#   REBOOT_SYSFS_ROOT    sysfs root, default /sys (tests point it at a fake tree; REBOOT_HOOK_SYSFS too);
#   REBOOT_SYSFS_WRITE   a command "CMD VALUE PATH" that writes sysfs instead of the shell (tests: a fake kernel);
#   REBOOT_HOOK_STATE    where hooks keep what they must undo later, default /var/lib/rebootctl/hooks.

HOOK=$(basename "$0")
REBOOT_HOOK_CONFIG=${REBOOT_HOOK_CONFIG:-/etc/rebootctl/hooks.env}
if [ -r "$REBOOT_HOOK_CONFIG" ]; then
  # shellcheck disable=SC1090
  . "$REBOOT_HOOK_CONFIG"
fi
SYSFS=${REBOOT_SYSFS_ROOT:-${REBOOT_HOOK_SYSFS:-/sys}}
HOOK_STATE=${REBOOT_HOOK_STATE:-/var/lib/rebootctl/hooks}
DRY_RUN=${REBOOT_HOOK_DRY_RUN:-0}
XPU_ID=${XPU_ID:-}
DEADLINE=${DEADLINE:-}

# The command as the agent sent it (empty object when run by hand from a terminal).
if [ -t 0 ]; then CMD_JSON='{}'; else CMD_JSON=$(cat); fi

# stdout and stderr both end up in the result the server records: keep them short and useful.
log() { printf '%s: %s\n' "$HOOK" "$*" >&2; }
die() { log "error: $*"; exit 1; }
dry() { [ "$DRY_RUN" = 1 ]; }

# Runs a command, or prints it in a dry run.
run() {
  if dry; then printf 'dry run: would run: %s\n' "$*"; return 0; fi
  log "run: $*"
  "$@"
}

# Writes a value to a (sysfs) file, or prints it in a dry run.
write_to() {
  local value=$1 path=$2
  if dry; then printf 'dry run: would write %s to %s\n' "$value" "$path"; return 0; fi
  log "write $value > $path"
  if [ -n "${REBOOT_SYSFS_WRITE:-}" ]; then "$REBOOT_SYSFS_WRITE" "$value" "$path"; else printf '%s' "$value" > "$path"; fi
}

# Writes a small file atomically (temp file + rename), or prints it in a dry run.
write_file() {
  local value=$1 path=$2
  if dry; then printf 'dry run: would write %s to %s\n' "$value" "$path"; return 0; fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$value" > "$path.tmp.$$" && mv "$path.tmp.$$" "$path"
}

# The hook's last line: what it did, or in a dry run what it would have done (the agent never
# reports a dry run as succeeded either).
finish() {
  if dry; then echo "dry run: nothing changed; would have: $*"; else echo "$*"; fi
}

# An id from the server used in a path, an option or a command line: no '/', no '..', no leading
# '-', no control characters or spaces. Empty is allowed (optional args).
check_id() {
  local name=$1 value=$2
  [ -z "$value" ] && return 0
  [[ $value =~ ^[A-Za-z0-9_][A-Za-z0-9._:@+=-]{0,199}$ && $value != *..* ]] || die "unsafe $name '$value' from the server"
}

# A string argument of the command: arg target -> .args.target (empty when absent).
arg() {
  if command -v jq >/dev/null 2>&1; then
    jq -r --arg k "$1" '.args[$k] // empty | tostring' <<<"$CMD_JSON"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get("args",{}).get(sys.argv[2]); print("" if v is None else v)' "$CMD_JSON" "$1"
  else
    die "reading command args needs jq or python3"
  fi
}

check_id REBOOT_ID "${REBOOT_ID:-}"
check_id XPU_ID "$XPU_ID"

# Seconds until the command's deadline (the agent kills the hook then), minus a margin.
seconds_left() {
  local margin=${1:-5} end
  [ -n "$DEADLINE" ] || { echo 60; return; }
  end=$(date -d "$DEADLINE" +%s) || die "cannot parse DEADLINE=$DEADLINE"
  echo $(( end - $(date +%s) - margin ))
}

# Self-check (`rebootctl agent check --hook-self-check` sets REBOOT_HOOK_CHECK=1): a hook may define
# self_check() before sourcing this file to verify its tools and settings; then it exits here, before
# doing anything. A hook without self_check passes.
if [ "${REBOOT_HOOK_CHECK:-0}" = 1 ]; then
  if declare -F self_check >/dev/null; then self_check; fi
  echo "check: $HOOK ok"
  exit 0
fi
