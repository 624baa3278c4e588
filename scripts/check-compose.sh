#!/usr/bin/env bash
# Checks docker-compose.yml (or the file given) and exits non-zero if it is invalid; no Docker engine needed.
#   - With the Compose CLI (`docker compose version` works): `docker compose config -q`.
#   - Without it: the Compose Specification JSON schema vendored in check-jsonschema (pinned, installed into
#     the project venv), then the cross-references Compose resolves and a schema cannot see.
#
#   scripts/check-compose.sh [FILE]        (scripts/stack.sh test runs it with the static checks)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILE=$(realpath "${1:-$ROOT/docker-compose.yml}")
VENV=$ROOT/.venv
CHECK_JSONSCHEMA_VERSION=0.39.0

[ -f "$FILE" ] || { echo "check-compose: no such file: $FILE" >&2; exit 2; }

if docker compose version >/dev/null 2>&1; then
  # The repository root as project directory, so a copy elsewhere is checked like the real file.
  docker compose --project-directory "$ROOT" -f "$FILE" config -q
  echo "check-compose: $FILE is valid (docker compose config)"
  exit 0
fi

if [ "$("$VENV/bin/check-jsonschema" --version 2>/dev/null)" != \
  "check-jsonschema, version $CHECK_JSONSCHEMA_VERSION" ]; then
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi

"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$FILE"

# ruamel.yaml comes with check-jsonschema; safe loading resolves anchors and merge keys as Compose does.
"$VENV/bin/python" - "$FILE" <<'PY'
import re
import sys

from ruamel.yaml import YAML

path = sys.argv[1]
with open(path, encoding='utf-8') as f:
    doc = YAML(typ='safe').load(f)
problems = []
services = doc.get('services') or {}
declared = {kind: set(doc.get(kind) or {}) for kind in ('volumes', 'secrets', 'configs', 'networks')}
declared['networks'].add('default')


def names(value):
    """Keys of a mapping, or the entries of a list (strings, or {source: ...} for secrets and configs)."""
    if isinstance(value, dict):
        return list(value)
    return [v['source'] if isinstance(v, dict) else v for v in value or []]


for name, svc in services.items():
    at = f'services.{name}'
    for dep in names(svc.get('depends_on')):
        if dep not in services:
            problems.append(f'{at}.depends_on: unknown service "{dep}"')
    mode = svc.get('network_mode') or ''
    if mode.startswith('service:'):
        if mode[len('service:'):] not in services:
            problems.append(f'{at}.network_mode: unknown service "{mode[len("service:"):]}"')
        for key in ('ports', 'networks'):
            if key in svc:
                problems.append(f'{at}: {key} with network_mode "{mode}" (Docker refuses it at `up`)')
    for kind in ('secrets', 'configs', 'networks'):
        for ref in names(svc.get(kind)):
            if ref not in declared[kind]:
                problems.append(f'{at}.{kind}: "{ref}" is not declared at the top level')
    for vol in svc.get('volumes') or []:
        if isinstance(vol, dict):
            source = vol.get('source') if vol.get('type', 'volume') == 'volume' else None
        else:
            source = vol.split(':', 1)[0] if ':' in vol else None
            if source and source[0] in './~$':
                source = None  # a bind mount
        if source and source not in declared['volumes']:
            problems.append(f'{at}.volumes: named volume "{source}" is not declared at the top level')
    extends = svc.get('extends')
    if isinstance(extends, dict) and 'file' not in extends and extends.get('service') not in services:
        problems.append(f'{at}.extends: unknown service "{extends.get("service")}"')

# Interpolation: Compose rejects a "${" that is not ${NAME} or ${NAME:-default} and the like ("$$" is a literal "$").
TEMPLATE = re.compile(r'\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}')


def walk(node, where):
    if isinstance(node, dict):
        for key, value in node.items():
            walk(value, f'{where}.{key}' if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            walk(value, f'{where}[{i}]')
    elif isinstance(node, str) and '${' in TEMPLATE.sub('', node):
        problems.append(f'{where}: invalid interpolation in "{node}" (write $$ for a literal $)')


walk(doc, '')
if problems:
    print(f'{path}: {len(problems)} problem(s):', *problems, sep='\n  - ', file=sys.stderr)
    sys.exit(1)
PY
echo "check-compose: $FILE is valid (Compose Specification schema from check-jsonschema $CHECK_JSONSCHEMA_VERSION)"
