# shellcheck shell=bash
# scripts/stack.sh test/jest: the whole suite in parts, this stack and a second one side by side.
# Sourced by scripts/stack.sh, which sets ROOT, the ports and the paths it uses.

# ---------------------------------------------------------------- test
# `test` runs the chaos project on a second stack beside this one: ports 50 up (no default port of one stack is one
# of the other's), its data directory inside this one's, its own network namespaces and AWS call log.
SECOND_OFFSET=$((OFF + 50))
SECOND_DATA=$DRBOOK_DATA/stack2
on_second_stack() { # command...: run with the second stack's settings (this stack's unset, so they are derived anew)
  local unset=() v
  for v in "${STACK_VARS[@]}" DRBOOK_AWS_CALL_LOG; do unset+=(-u "$v"); done
  env "${unset[@]}" DRBOOK_PORT_OFFSET="$SECOND_OFFSET" DRBOOK_DATA="$SECOND_DATA" "$@"
}

# npx jest against this stack, every AWS call an activity makes recorded in its call log (worker processes the
# tests start inherit it), which test/audit/aws-policy.test.ts checks against deploy/iam.
cmd_jest() {
  require_runtime
  export DRBOOK_AWS_CALL_LOG=${DRBOOK_AWS_CALL_LOG:-$RUN/aws-calls.jsonl}
  cd "$ROOT" && npx jest "$@"
}

# One part of `test`, in the background: its output to $PARTS/<name>.log (printed when the part ends), its exit
# status to <name>.rc, its pid in PART_PIDS. A jest part's results go to <name>.json.
declare -A PART_PIDS=()
part() { # name command...
  local name=$1
  shift
  {
    local status=0
    "$@" >"$PARTS/$name.log" 2>&1 || status=$?
    echo "$status" >"$PARTS/$name.rc"
    log "$name: done (exit $status)"
    cat "$PARTS/$name.log"
  } &
  PART_PIDS[$name]=$!
}
jest_part() { part "$@" --json --outputFile="$PARTS/$1.json"; } # name command...: jest's results to <name>.json
wait_parts() { # name...: wait for these parts; fails if one of them did
  local name failed=0
  for name in "$@"; do
    wait "${PART_PIDS[$name]}" || true
    unset "PART_PIDS[$name]"
    [ "$(cat "$PARTS/$name.rc" 2>/dev/null)" = 0 ] || failed=1
  done
  return "$failed"
}
kill_tree() { # pid: the process and everything it started, children first
  local child
  for child in $(pgrep -P "$1" || true); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}

# Integration test files `test` runs on the second stack after the chaos project (not on this one), so that both
# stacks end about together. Any file runs on either stack; a name here that matches no file drops nothing.
SECOND_STACK_TESTS=(test/integration/fence.test.ts)

# The second stack's share of `test`: the chaos project, then (a whole run) the integration files moved there.
second_stack_tests() { # [test paths]
  local status=0
  on_second_stack "$SELF" jest --runInBand --selectProjects chaos --passWithNoTests \
    --json --outputFile="$PARTS/chaos.json" "$@" || status=$?
  if [ $# -eq 0 ]; then
    on_second_stack "$SELF" jest --runInBand --selectProjects integration --passWithNoTests \
      --json --outputFile="$PARTS/main2.json" "${SECOND_STACK_TESTS[@]}" || status=$?
  fi
  return "$status"
}

# Types, lint (no floating promises, no Node built-ins in workflows), format, the compose file.
static_checks() {
  cd "$ROOT" && npx tsc --noEmit -p . && npx eslint . && npx prettier --check . --log-level warn &&
    bash scripts/check-compose.sh
}

cmd_test() {
  cmd_install
  local rc=0 second=
  [ -n "${DRBOOK_SKIP_CHAOS:-}" ] || second=1
  PARTS=$RUN/test
  # Whatever happens (a service that fails to start included), the last line is the count, after the stops: of
  # the parts still running and of the stacks this run started (one that was already running is left running).
  SUMMARY="0 passed, 1 failed"
  STOP_FIRST=
  STOP_SECOND=
  running temporal || STOP_FIRST=1
  [ -z "$second" ] || on_second_stack "$SELF" status >/dev/null || STOP_SECOND=1
  # The two stacks stop side by side (their processes, pids and data directories are their own).
  trap 'for p in "${PART_PIDS[@]}"; do kill_tree "$p"; done
    [ -z "$STOP_SECOND" ] || on_second_stack "$SELF" stop &
    [ -z "$STOP_FIRST" ] || cmd_stop
    wait
    echo "$SUMMARY"' EXIT
  mkdir -p "$PARTS"
  rm -f "$PARTS"/* "$RUN/chaos.jsonl" "$RUN/aws-calls.jsonl" "$SECOND_DATA/run/chaos.jsonl" \
    "$SECOND_DATA/run/aws-calls.jsonl"
  local more=() moved=() f
  [ $# -eq 0 ] || more=(--passWithNoTests) # test paths given: a project none of whose files match is no failure
  if [ $# -eq 0 ] && [ -n "$second" ]; then
    moved=(--testPathIgnorePatterns)
    for f in "${SECOND_STACK_TESTS[@]}"; do moved+=("/${f//./\\.}\$"); done
  fi
  # The static checks (one core: tsc, eslint and prettier are single-threaded) and the unit project (no service
  # needed) run while the stacks start; the rest waits for the static checks, so a type error still stops the run.
  log "static checks (tsc, eslint, prettier, docker-compose.yml) and the unit project, in the background"
  part static static_checks
  jest_part unit cmd_jest --runInBand --selectProjects unit "${more[@]}" "$@"
  cmd_start
  [ -z "$second" ] || on_second_stack "$SELF" start
  wait_parts static || {
    echo "static checks failed"
    return 1
  }
  # The main suite on this stack and the chaos project (bounded: each test has its own deadline) on the second,
  # side by side: the chaos tests mostly wait (for a workflow task to time out, a fault to be noticed).
  log "integration and e2e projects on this stack${second:+; the chaos project on the second (offset $SECOND_OFFSET)}"
  jest_part main cmd_jest --runInBand --selectProjects integration e2e "${more[@]}" "${moved[@]}" "$@"
  [ -z "$second" ] || part chaos second_stack_tests "$@"
  wait_parts unit main ${second:+chaos} || rc=1
  if [ -n "$second" ]; then DRBOOK_DATA=$SECOND_DATA node_ts test/helpers/chaos.ts || true; fi
  # Then the audits over what the suite left behind, on each stack: every workflow history scanned for secrets,
  # every log and temp file; the AWS calls of both stacks checked against deploy/iam; command lines sampled while
  # runbooks run (on this stack).
  local calls=$RUN/aws-calls.jsonl
  [ -z "$second" ] || calls=$calls:$SECOND_DATA/run/aws-calls.jsonl
  jest_part audit env DRBOOK_AUDIT_AWS_CALL_LOGS="$calls" "$SELF" jest --runInBand --selectProjects audit
  [ -z "$second" ] || jest_part audit2 on_second_stack "$SELF" jest --runInBand --selectProjects audit \
    --testPathPattern 'secrets-in-history|secrets-on-disk'
  wait_parts audit ${second:+audit2} || rc=1
  local results=()
  local parts=(unit main)
  [ -z "$second" ] || parts+=(chaos)
  [ -z "$second" ] || [ $# -gt 0 ] || parts+=(main2)
  parts+=(audit)
  [ -z "$second" ] || parts+=(audit2)
  for p in "${parts[@]}"; do results+=("$PARTS/$p.json"); done
  SUMMARY=$(node -e '
    const fs = require("fs");
    const n = { passed: 0, failed: 0, skipped: 0 };
    for (const f of process.argv.slice(1)) {
      if (!fs.existsSync(f)) { n.failed++; continue; }
      const r = require(f);
      n.passed += r.numPassedTests; n.failed += r.numFailedTests; n.skipped += r.numPendingTests;
    }
    console.log(`${n.passed} passed, ${n.failed} failed, ${n.skipped} skipped`);
  ' "${results[@]}") || SUMMARY="0 passed, 1 failed"
  # Where the time went: the slowest test files of every project (what to look at to make the suite faster), and
  # how long each part took from its start to its end.
  node -e '
    const fs = require("fs");
    const runs = process.argv.slice(1).filter(fs.existsSync).map((f) => [f, require(f)]);
    const files = runs.flatMap(([, r]) => r.testResults);
    const secs = (r) => (r.endTime - r.startTime) / 1000;
    const total = files.reduce((s, r) => s + secs(r), 0);
    for (const [f, r] of runs) {
      const end = Math.max(r.startTime, ...r.testResults.map((t) => t.endTime));
      const name = f.replace(/.*\//, "").replace(/\.json$/, "");
      console.log(`part ${name.padEnd(7)} ${Math.round((end - r.startTime) / 1000)} s`);
    }
    console.log(`slowest test files (of ${files.length}, ${Math.round(total)} s in all):`);
    for (const r of files.sort((a, b) => secs(b) - secs(a)).slice(0, 15))
      console.log(`  ${secs(r).toFixed(0).padStart(5)} s  ${r.name.replace(process.cwd() + "/", "")}`);
  ' "${results[@]}" || true
  return $rc
}
