#!/usr/bin/env bash
# Builds rebootctl-agent_<version>_all.deb around the bundled agent: architecture "all" (pure
# JavaScript), depends on Node.js >= 22 from the distribution or NodeSource.
# Usage: build-deb.sh <rebootctl-agent.mjs> <version> <out dir>   (npm run package:agent -- --deb)
set -euo pipefail
bundle=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
agent_dir=$(dirname "$here")
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb not found (apt-get install dpkg-dev)" >&2; exit 1; }
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bundle" "$root/usr/lib/rebootctl/rebootctl-agent.mjs"
# The daemon alone, which the bundle re-executes into (leaner idle agent); the bundle runs without it too.
daemon="$(dirname "$bundle")/rebootctl-agent-daemon.mjs"
if [ -f "$daemon" ]; then install -D -m 0755 "$daemon" "$root/usr/lib/rebootctl/rebootctl-agent-daemon.mjs"; fi
install -D -m 0644 "$agent_dir/rebootctl-agent.service" "$root/lib/systemd/system/rebootctl-agent.service"
# The host's shutdown gate (docs/identities.md): shipped, enabled by hand on hosts only.
install -D -m 0644 "$agent_dir/rebootctl-host-reboot-gate.service" "$root/lib/systemd/system/rebootctl-host-reboot-gate.service"
install -D -m 0644 "$here/rebootctl.rules" "$root/usr/share/polkit-1/rules.d/50-rebootctl.rules"
mkdir -p "$root/usr/bin" "$root/usr/share/doc/rebootctl-agent/examples" "$root/etc/rebootctl/hooks"
printf '#!/bin/sh\nexec /usr/bin/node /usr/lib/rebootctl/rebootctl-agent.mjs "$@"\n' > "$root/usr/bin/rebootctl-agent"
chmod 0755 "$root/usr/bin/rebootctl-agent"
cp -r "$agent_dir/examples/hooks" "$root/usr/share/doc/rebootctl-agent/examples/hooks"
install -m 0644 "$agent_dir/README.md" "$root/usr/share/doc/rebootctl-agent/README.md"
printf 'REBOOT_AGENT_SERVER=https://reboots.example.com\nREBOOT_AGENT_ID=node-a\n' > "$root/etc/rebootctl/agent.env"
mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: rebootctl-agent
Version: ${version}
Architecture: all
Maintainer: xpu-reboot-coordinator maintainers <noreply@example.com>
Depends: nodejs (>= 22)
Recommends: pciutils, systemd (>= 249)
Section: admin
Priority: optional
Description: edge agent of the xPU reboot coordinator
 Long-polls the coordinator for commands and runs one hook per command on a
 host or an xPU (DPU/IPU) OS; exactly once, journalled, with deadlines.
CONTROL
echo /etc/rebootctl/agent.env > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  getent passwd rebootctl >/dev/null || useradd --system --home-dir /var/lib/rebootctl --no-create-home --shell /usr/sbin/nologin rebootctl
  chmod 0755 /etc/rebootctl /etc/rebootctl/hooks
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
  echo "rebootctl-agent: put the token in /etc/rebootctl/agent.token (0600), hooks in /etc/rebootctl/hooks"
  echo "  (examples: /usr/share/doc/rebootctl-agent/examples/hooks), then: systemctl enable --now rebootctl-agent"
fi
POSTINST
chmod 0755 "$root/DEBIAN/postinst"
deb="$out/rebootctl-agent_${version}_all.deb"
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "wrote $deb"
