#!/bin/sh
# A DR "host" for docker-compose.yml: sshd (root, key only) plus the device that holds the VIP.
# Each container is one host, so no `ip netns exec` prefix is needed (scripts/stack.sh runs one sshd
# and two network namespaces instead). Moving the VIP over SSH needs the container's NET_ADMIN capability.
set -eu
keys=${DRBOOK_SSH_DIR:-/keys}
device=${DRBOOK_VIP_DEVICE:-drbook0}
[ -f "$keys/host_ed25519" ] || {
  echo "no host key in $keys (the ssh-keys service makes it)" >&2
  exit 1
}
# A bridge, not a dummy device: the bridge module is loaded on every Docker host, and a container cannot load modules.
ip link show "$device" >/dev/null 2>&1 || ip link add "$device" type bridge
ip link set "$device" up
# The VIP starts on the host given DRBOOK_VIP (the primary); a restarted container starts from that again.
if [ -n "${DRBOOK_VIP:-}" ] && ! ip -o addr show dev "$device" | grep -q " ${DRBOOK_VIP} "; then
  ip addr add "$DRBOOK_VIP" dev "$device"
fi
cat >/run/drbook-sshd_config <<CONF
Port 22
HostKey $keys/host_ed25519
AuthorizedKeysFile $keys/authorized_keys
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
CONF
exec /usr/sbin/sshd -D -e -f /run/drbook-sshd_config
