#!/bin/sh
# One-shot (compose service ssh-keys): the keys scripts/stack.sh generates under .data/ssh, in the ssh-keys
# volume instead. Idempotent. One host key for both hosts, pinned in known_hosts: never trusted on first use.
set -eu
dir=${DRBOOK_SSH_DIR:-/keys}
hosts=${DRBOOK_SSH_HOSTS:-primary-host dr-host}
# The worker runs as the node image's user (uid 1000); sshd reads the rest as root.
worker_uid=${DRBOOK_WORKER_UID:-1000}
umask 077
mkdir -p "$dir"
chmod 0755 "$dir" # the worker (not root) must reach its key and known_hosts
cd "$dir"
[ -f host_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C drbook-sandbox-host -f host_ed25519
[ -f id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C drbook-worker -f id_ed25519
cp id_ed25519.pub authorized_keys
: >known_hosts
for host in $hosts; do
  echo "$host $(cut -d' ' -f1,2 host_ed25519.pub)" >>known_hosts
done
chown "$worker_uid" id_ed25519
chmod 0644 authorized_keys known_hosts host_ed25519.pub id_ed25519.pub
echo "ssh keys ready in $dir for: $hosts"
