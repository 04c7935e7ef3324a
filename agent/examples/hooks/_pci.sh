# shellcheck shell=bash
# PCI helpers of the EXAMPLE protect-pcie / restore-pcie hooks: which card, which host port, safe config writes.
# Sourced after _lib.sh. See README.md in this directory for the reasoning and the vendor notes.
#
#   REBOOT_SETPCI        setpci command (default setpci; tests: a fake one over a fake sysfs)
#   REBOOT_HOOK_POLL_SECONDS  how often waits look again (default 0.2)
#   REBOOT_ROOT_SOURCE   the device of / (default: findmnt -n -o SOURCE /)
#   REBOOT_DEFAULT_ROUTE_DEV  the interface of the default route (default: from ip route)
#
# Site settings (hooks.env), per xPU id (non-alphanumerics of the id become _), one of:
#   XPU_PORT_<id>   BDF of the HOST-side port the card hangs off (root port or a host switch's downstream port)
#   XPU_SLOT_<id>   physical slot name (/sys/bus/pci/slots/<name>)
#   XPU_DSN_<id>    Device Serial Number of one of the card's functions (lspci -vv: "Device Serial Number")
#   XPU_PCI_ADDRS_<id> / XPU_PCI_ADDRS   BDFs of the card's functions (the first one found anchors the search)
#   XPU_CARD_VENDORS_<id> / XPU_CARD_VENDORS  PCI vendor ids of the card's own switch ports (default: the anchor's)

SETPCI=${REBOOT_SETPCI:-setpci}
POLL=${REBOOT_HOOK_POLL_SECONDS:-0.2}
BDF_RE='^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$'

is_bdf() { [[ $1 =~ $BDF_RE ]]; }
pci_dev() { echo "$SYSFS/bus/pci/devices/$1"; }
pci_exists() { [ -e "$(pci_dev "$1")" ]; }
dev_path() { readlink -f "$(pci_dev "$1")"; }
parent_of() { basename "$(dirname "$(dev_path "$1")")"; }
vendor_of() { local v; v=$(cat "$(pci_dev "$1")/vendor" 2>/dev/null) || return 1; echo "${v#0x}"; }
bound_driver() {
  local link
  link="$(pci_dev "$1")/driver"
  if [ -e "$link" ]; then basename "$(readlink -f "$link")"; fi
}
netdevs_of() {
  local d="$(pci_dev "$1")/net"
  if [ -d "$d" ]; then (cd "$d" && ls -1 | tr '\n' ',' | sed 's/,$//'); fi
}
is_vf() { [ -e "$(pci_dev "$1")/physfn" ]; }
xpu_var() { local name="$1_${XPU_ID//[^A-Za-z0-9_]/_}"; echo "${!name:-}"; }

# A config-space register (setpci name, e.g. CAP_EXP+0x12.W), lower-case hex. setpci prints nothing
# and exits 0 when the device does not exist, so an empty answer is a failure too.
cfg_read() {
  local out
  out=$("$SETPCI" -s "$1" "$2" 2>/dev/null) || return 1
  [[ $out =~ ^[0-9a-fA-F]+$ ]] || return 1
  echo "${out,,}"
}

width_of() { case $1 in *.L) echo 8 ;; *.W) echo 4 ;; *) echo 2 ;; esac; }

# Writes VALUE under MASK (setpci's read-modify-write) and reads it back: setpci exits 0 when the
# kernel refused the write (lockdown) or the register ignored it, so only the read-back tells.
cfg_write_verified() {
  local bdf=$1 reg=$2 value=$3 mask=$4 w got
  w=$(width_of "$reg")
  value=$(printf "%0${w}x" $((0x$value))); mask=$(printf "%0${w}x" $((0x$mask)))
  run "$SETPCI" -s "$bdf" "$reg=$value:$mask" || return 1
  dry && return 0
  got=$(cfg_read "$bdf" "$reg") || { log "cannot read back $reg of $bdf"; return 1; }
  if (( (0x$got & 0x$mask) != (0x$value & 0x$mask) )); then
    log "write did not take: $reg of $bdf reads $got, expected $value under mask $mask"
    return 1
  fi
}

# Latched status bits are RW1C: writing 1 clears them, 0 leaves them. A stale "link changed" or
# "surprise down" would otherwise fire the moment the events are unmasked and remove the device again.
cfg_clear_rw1c() {
  local bdf=$1 reg=$2 bits=$3 w
  w=$(width_of "$reg")
  run "$SETPCI" -s "$bdf" "$reg=$(printf "%0${w}x" $((0x$bits)))"
}

# Secure Boot usually means lockdown, and under lockdown the kernel refuses config writes beyond
# the standard header: every mask below would silently not happen.
refuse_under_lockdown() {
  local f="$SYSFS/kernel/security/lockdown"
  [ -r "$f" ] || return 0
  if grep -qE '\[(integrity|confidentiality)\]' "$f"; then
    die "kernel lockdown is active ($(tr -d '\n' < "$f")): PCI config writes are refused, so DPC and surprise-down cannot be masked. Mask them in firmware (BIOS: disable DPC / surprise-down reporting on the slot), then replace this hook by one that only removes and rescans"
  fi
}

# PCIe device/port type (PCI Express Capabilities bits 7:4): 4 root port, 5 switch upstream, 6 switch downstream.
pcie_type() { local v; v=$(cfg_read "$1" CAP_EXP+0x02.W) || return 1; echo $(( (0x$v >> 4) & 0xf )); }

# Device Serial Number as lspci prints it: xx-xx-xx-xx-xx-xx-xx-xx (upper dword first, bytes high to low).
dsn_of() {
  local lo hi
  lo=$(cfg_read "$1" ECAP_DSN+0x04.L) || return 1
  hi=$(cfg_read "$1" ECAP_DSN+0x08.L) || return 1
  echo "$hi$lo" | sed 's/../&-/g; s/-$//'
}

# From a function of the card, up to the HOST-side port: past every bridge that belongs to the
# card (its own switch: Pensando DSC, BlueField with switch emulation), to the first root port or
# the first port of another vendor (the host's switch). That port keeps its link state when the
# card resets; the card's own upstream port resets with it, so masking it protects nothing.
host_port_above() {
  local cur=$1 parent type vendors
  vendors=$(xpu_var XPU_CARD_VENDORS); vendors=${vendors:-${XPU_CARD_VENDORS:-$(vendor_of "$1")}}
  while :; do
    parent=$(parent_of "$cur")
    is_bdf "$parent" || die "no PCI bridge above $cur: a root-complex integrated device cannot be protected this way"
    type=$(pcie_type "$parent") || die "cannot read the PCIe capability of $parent"
    if [ "$type" = 4 ]; then echo "$parent"; return; fi
    if [[ " ${vendors,,} " != *" $(vendor_of "$parent") "* ]]; then echo "$parent"; return; fi
    cur=$parent
  done
}

# Finds the card: sets CARD_PORT (host-side port; empty if unknown) and CARD_HOW (how it was found).
# Returns 1 when the card cannot be found at all (e.g. already removed and identified by BDF or DSN).
find_card() {
  local port slot dsn addrs addr d bus
  CARD_PORT=""; CARD_HOW=""
  port=$(xpu_var XPU_PORT); slot=$(xpu_var XPU_SLOT); dsn=$(xpu_var XPU_DSN)
  addrs=$(xpu_var XPU_PCI_ADDRS); addrs=${addrs:-${XPU_PCI_ADDRS:-}}
  if [ -n "$port" ]; then
    is_bdf "$port" || die "XPU_PORT for '$XPU_ID' is '$port', not a PCI address like 0000:3a:00.0"
    pci_exists "$port" || die "host port $port of xPU '$XPU_ID' does not exist"
    CARD_PORT=$port; CARD_HOW="port $port"; return 0
  fi
  if [ -n "$slot" ]; then
    [ -r "$SYSFS/bus/pci/slots/$slot/address" ] || die "no PCI slot '$slot' (XPU_SLOT for '$XPU_ID') in $SYSFS/bus/pci/slots"
    bus=$(cat "$SYSFS/bus/pci/slots/$slot/address")   # domain:bus:device of the card behind the slot
    for d in "$SYSFS"/bus/pci/devices/*; do
      [ -r "$d/secondary_bus_number" ] || continue
      if [ "$(printf '%02x' "$(cat "$d/secondary_bus_number")")" = "$(echo "$bus" | cut -d: -f2)" ] &&
         [ "$(basename "$d" | cut -d: -f1)" = "$(echo "$bus" | cut -d: -f1)" ]; then
        CARD_PORT=$(basename "$d"); CARD_HOW="slot $slot"; return 0
      fi
    done
    die "no bridge leads to slot '$slot' ($bus)"
  fi
  if [ -n "$dsn" ]; then
    for d in "$SYSFS"/bus/pci/devices/*; do
      addr=$(basename "$d")
      if [ "$(dsn_of "$addr" 2>/dev/null)" = "${dsn,,}" ]; then
        CARD_PORT=$(host_port_above "$addr"); CARD_HOW="serial number $dsn ($addr)"; return 0
      fi
    done
    return 1
  fi
  [ -n "$addrs" ] || die "no identity for xPU '${XPU_ID}': set XPU_PORT_, XPU_SLOT_, XPU_DSN_ or XPU_PCI_ADDRS_<id> in $REBOOT_HOOK_CONFIG"
  for addr in $addrs; do
    is_bdf "$addr" || die "'$addr' is not a PCI address like 0000:3b:00.0"
    if pci_exists "$addr"; then CARD_PORT=$(host_port_above "$addr"); CARD_HOW="function $addr"; return 0; fi
  done
  return 1
}

# Every function below the host port (the card's switch ports, PFs, VFs, rshim, emulated devices),
# and those directly below it (removing them removes the rest).
card_functions() { find "$(dev_path "$1")" -mindepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$' -printf '%f\n' | sort; }
card_tops() { find "$(dev_path "$1")" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$' -printf '%f\n' | sort -r; }

# Waits until CHECK (a command) succeeds or the deadline budget runs out; returns 1 then.
wait_until() {
  local what=$1 end; shift
  end=$(( $(date +%s) + $(seconds_left 5) ))
  until "$@"; do
    if [ "$(date +%s)" -ge "$end" ]; then log "timed out waiting for $what"; return 1; fi
    sleep "$POLL"
  done
}

# Data Link Layer Link Active (Link Status bit 13): the card has trained its link again.
link_active() { local v; v=$(cfg_read "$1" CAP_EXP+0x12.W) || return 1; (( (0x$v >> 13) & 1 )); }
# Config reads of a dead or absent function return all ones.
alive() { local v; v=$(cfg_read "$1" 0x00.W) || return 1; [ "$v" != ffff ]; }

# Self-check of the PCIe hooks at agent start: setpci works, no lockdown, and every configured xPU's
# card is found (by port, slot, serial number or BDF) with its host-side port.
check_pci_setup() {
  local ids id var
  command -v "$SETPCI" >/dev/null 2>&1 || die "$SETPCI not found (install pciutils >= 3.6)"
  refuse_under_lockdown
  ids=$(compgen -v | sed -n 's/^XPU_\(PORT\|SLOT\|DSN\|PCI_ADDRS\)_\(.*\)$/\2/p' | sort -u)
  [ -n "$ids" ] || die "no xPU configured in $REBOOT_HOOK_CONFIG (XPU_PORT_<id>, XPU_SLOT_<id>, XPU_DSN_<id> or XPU_PCI_ADDRS_<id>)"
  for id in $ids; do
    XPU_ID=$id
    find_card || die "the card of xPU '$id' is not present"
    echo "check: xPU '$id': card found by $CARD_HOW, host-side port $CARD_PORT"
  done
}
