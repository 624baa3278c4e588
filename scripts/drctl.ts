/**
 * drctl: the operator's terminal for drbook. Starts runbooks, approves and aborts them, shows
 * live step-by-step status, lists recent runs with measured RTO/RPO, renders reports.
 * Talks to Temporal only through @temporalio/client (connection from @temporalio/envconfig:
 * TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_PROFILE); validates service
 * names against the inventory (DRBOOK_INVENTORY) before it asks Temporal anything.
 *
 *   drctl failover shop --dry-run --reason "hourly check"      drctl approve drill-shop --step promote --as alice
 *   drctl drill shop --scope switchover                          drctl status drill-shop --watch
 *   drctl runs --service shop --runbook drill                    drctl report drill-shop --html drill.html
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { Argument, Command, CommanderError, Option } from 'commander';
import { InventoryError } from '../config/inventory';
import { loadInventory } from '../config/load';
import { rootCauseMessage } from '../activities/errors';
import { approvalMessagesOf } from '../activities/reports/approvals';
import {
  drillView,
  identifyApprovals,
  renderHtml,
  renderMarkdown,
  runbookView,
  type ReportView,
} from '../activities/reports/drill-report';
import { dataConverterFromEnv } from '../workers/codec';
import {
  APPROVAL_SIGNATURE_NAMESPACE,
  approvalMessage,
  TASK_QUEUE,
  type Approval,
  type DrillReport,
  type RunbookStatus,
  type Topology,
} from '../workflows/contract';
import type { DrillStatus } from '../workflows/drill';
import { abortSignal, approveUpdate, statusQuery } from '../workflows/messages';
import { runMetadata } from './run-metadata';
import { schedulesCommand } from './schedules';

/** A problem the operator can fix: printed as one line, exit code 1, no stack trace. */
export class OperatorError extends Error {}

export interface DrctlIo {
  out(text: string): void;
  err(text: string): void;
}

export interface DrctlOptions {
  /** A connected client (tests); default: connect with envconfig on first use. */
  client?: Client;
  io?: DrctlIo;
  /** Seconds between refreshes of `status --watch`. */
  watchIntervalMs?: number;
}

const RUNBOOK_TYPES: Record<string, string> = {
  failover: 'failover',
  failback: 'failback',
  drill: 'drDrill',
  'restore-test': 'restoreTest',
  backup: 'nightlyBackup',
  readiness: 'readiness',
  resolve: 'resolveSplit',
};

const stamp = () =>
  new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

export function buildProgram(options: DrctlOptions = {}): Command {
  const io: DrctlIo = options.io ?? { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  const print = (text = '') => io.out(`${text}\n`);
  const json = (value: unknown) => print(JSON.stringify(value, null, 2));
  let client: Client | undefined = options.client;
  let connection: Connection | undefined;

  async function temporal(): Promise<Client> {
    if (!client) {
      const { connectionOptions, namespace } = loadClientConnectConfig();
      try {
        connection = await Connection.connect(connectionOptions);
      } catch (err) {
        throw new OperatorError(
          `cannot reach Temporal at ${connectionOptions.address ?? 'localhost:7233'}: ${(err as Error).message}`,
        );
      }
      // The identity Temporal records with every signal and update this drctl sends (shown in reports).
      const identity = process.env.DRBOOK_IDENTITY || `drctl:${os.userInfo().username}@${os.hostname()}`;
      client = new Client({ connection, namespace, identity, dataConverter: dataConverterFromEnv() });
    }
    return client;
  }

  function inventory() {
    try {
      return loadInventory().inventory;
    } catch (err) {
      if (err instanceof InventoryError) throw new OperatorError(err.message);
      throw err;
    }
  }
  function requireService(name: string): string {
    const inv = inventory();
    if (!inv.services.some((s) => s.name === name))
      throw new OperatorError(
        `unknown service "${name}"; the inventory has: ${inv.services.map((s) => s.name).join(', ')}`,
      );
    return name;
  }

  async function handleFor(workflowId: string) {
    const c = await temporal();
    const handle = c.workflow.getHandle(workflowId);
    try {
      return { handle, info: await handle.describe() };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new OperatorError(`no run "${workflowId}" (try: drctl runs, or drctl status <service>)`);
      throw err;
    }
  }

  async function start(
    runbook: keyof typeof RUNBOOK_TYPES,
    workflowId: string,
    input: object,
    taskQueue: string,
    wait: boolean,
  ) {
    const c = await temporal();
    try {
      const svc = inventory().services.find((x) => x.name === (input as { service?: string }).service);
      const handle = await c.workflow.start(RUNBOOK_TYPES[runbook], {
        taskQueue,
        workflowId,
        args: [input],
        ...runMetadata(runbook, input, svc),
      });
      print(`started ${runbook} ${workflowId} (run ${handle.firstExecutionRunId})`);
      print(`  follow:  drctl status ${workflowId} --watch`);
      if (!wait) return;
      const result: unknown = await handle.result();
      json(result);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        throw new OperatorError(
          `${workflowId} is already running: one ${runbook} per service at a time (drctl status ${workflowId})`,
        );
      throw err;
    }
  }

  const program = new Command('drctl')
    .description('Operate drbook runbooks: failover, failback, drill, backup, restore test')
    .option('--task-queue <queue>', 'task queue the workers serve', process.env.DRBOOK_TASK_QUEUE ?? TASK_QUEUE)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  const queue = () => program.opts<{ taskQueue: string }>().taskQueue;

  // ------------------------------------------------------------------ start runbooks
  program
    .command('failover <service>')
    .description('fail a service over to DR (default: a drill; --real for an incident)')
    .requiredOption('--reason <text>', 'why (recorded in the run and the notifications)')
    .option('--real', 'a real failover (a critical service needs two approvers, as in a drill)')
    .option('--dry-run', 'run every read-only readiness check, change nothing')
    .option('--wait', 'wait for the result and print it')
    .action(async (service: string, o: { reason: string; real?: boolean; dryRun?: boolean; wait?: boolean }) => {
      requireService(service);
      await start(
        'failover',
        `failover-${service}`,
        { service, mode: o.real ? 'real' : 'drill', reason: o.reason, dryRun: Boolean(o.dryRun) },
        queue(),
        Boolean(o.wait || o.dryRun),
      );
    });
  program
    .command('failback <service>')
    .description('switch a failed-over service back to its original primary')
    .option('--real', 'after a real failover (a critical service needs two approvers, as in a drill)')
    .option('--wait', 'wait for the result and print it')
    .action(async (service: string, o: { real?: boolean; wait?: boolean }) => {
      requireService(service);
      await start(
        'failback',
        `failback-${service}`,
        { service, mode: o.real ? 'real' : 'drill' },
        queue(),
        Boolean(o.wait),
      );
    });
  program
    .command('drill <service>')
    .description('run a DR drill: isolated (production untouched) or switchover (failover + failback)')
    .addOption(new Option('--scope <scope>', 'drill scope').choices(['isolated', 'switchover']).makeOptionMandatory())
    .option('--reason <text>', 'why', 'quarterly DR drill')
    .option('--wait', 'wait for the report and print it')
    .action(async (service: string, o: { scope: string; reason: string; wait?: boolean }) => {
      requireService(service);
      await start('drill', `drill-${service}`, { service, scope: o.scope, reason: o.reason }, queue(), Boolean(o.wait));
    });
  program
    .command('backup [services...]')
    .description('run the nightly backup now (default: every service with a backup section)')
    .option('--no-snapshots', 'logical dump only')
    .option('--wait', 'wait for the summary and print it')
    .action(async (services: string[], o: { snapshots: boolean; wait?: boolean }) => {
      services.forEach(requireService);
      await start(
        'backup',
        `nightly-backup-manual-${stamp()}`,
        { ...(services.length ? { services } : {}), snapshots: o.snapshots },
        queue(),
        Boolean(o.wait),
      );
    });
  if (existsSync(path.join(__dirname, '..', 'workflows', 'restore-test.ts'))) {
    program
      .command('restore-test <service>')
      .description('restore the newest verified backup into scratch and validate it')
      .option('--backup-id <id>', 'restore this backup instead of the newest')
      .option('--wait', 'wait for the result and print it')
      .action(async (service: string, o: { backupId?: string; wait?: boolean }) => {
        requireService(service);
        await start(
          'restore-test',
          `restore-test-${service}-${stamp()}`,
          { service, ...(o.backupId ? { backupId: o.backupId } : {}) },
          queue(),
          Boolean(o.wait),
        );
      });
  }

  program
    .command('resolve <service>')
    .description('end a split brain: keep one writable member, fence the others (approved by the production approvers)')
    .requiredOption('--keep <member>', 'the database member that stays writable')
    .requiredOption('--reason <text>', 'why this member (recorded in the run and the notifications)')
    .option('--wait', 'wait for the report and print it')
    .action(async (service: string, o: { keep: string; reason: string; wait?: boolean }) => {
      requireService(service);
      await start(
        'resolve',
        `resolve-${service}`,
        { service, keep: o.keep, reason: o.reason },
        queue(),
        Boolean(o.wait),
      );
    });

  // ------------------------------------------------------------------ approve / abort
  program
    .command('approve <workflowId>')
    .description('approve the step a run waits at (a drill: the child runbook that waits)')
    .requiredOption('--step <step>', 'the step waiting for approval (see drctl status)')
    .requiredOption('--as <approver>', 'your name, as listed in the inventory')
    .option('--comment <text>')
    .option('--override-rpo', 'promote although the expected data loss exceeds the RPO')
    .option('--ack-unfenced', 'accept that the old primary could not be fenced')
    .option('--json', 'print the receipt as JSON')
    .option(
      '--key <file>',
      'SSH key that signs the approval (signed policy; default ~/.ssh/id_ed25519, or its .pub with ssh-agent)',
    )
    .option('--print-signature', "print the signed approval as JSON for the Web UI's Send Signal dialog; send nothing")
    .action(
      async (
        workflowId: string,
        o: {
          step: string;
          as: string;
          comment?: string;
          overrideRpo?: boolean;
          ackUnfenced?: boolean;
          json?: boolean;
          key?: string;
          printSignature?: boolean;
        },
      ) => {
        const inv = inventory();
        const approvers = inv.approvers.map((a) => a.name);
        if (!approvers.includes(o.as))
          throw new OperatorError(`"${o.as}" is not an approver in the inventory (${approvers.join(', ')})`);
        const target = await waitingRun(workflowId);
        const pending = target.status.pendingApproval;
        if (!pending)
          throw new OperatorError(
            `${target.workflowId} is not waiting for an approval (phase: ${target.status.phase})`,
          );
        if (pending.step !== o.step)
          throw new OperatorError(`${target.workflowId} waits for approval of step "${pending.step}", not "${o.step}"`);
        const approval: Approval = {
          step: o.step,
          approver: o.as,
          ...(o.comment ? { comment: o.comment } : {}),
          ...(o.overrideRpo ? { overrideRpo: true } : {}),
          ...(o.ackUnfenced ? { acknowledgeUnfenced: true } : {}),
        };
        // Signed: over this run (the waiting child's, for a drill) and gate, with the user's own key; the key is a
        // path on the command line, never its contents.
        if (inv.approvals.policy === 'signed' || o.key || o.printSignature) {
          const message = approvalMessage({ workflowId: target.workflowId, runId: target.runId, ...approval });
          approval.signature = signApproval(message, o.key ?? path.join(os.homedir(), '.ssh', 'id_ed25519'));
        }
        if (o.printSignature) {
          // One line: what the Send Signal dialog takes (the signature's base64 without its armor lines).
          const oneLine = approval
            .signature!.split('\n')
            .filter((l) => l && !l.startsWith('-----'))
            .join('');
          return print(JSON.stringify({ ...approval, signature: oneLine }));
        }
        try {
          const receipt = await target.handle.executeUpdate(approveUpdate, { args: [approval] });
          if (o.json) return json({ workflowId: target.workflowId, ...receipt });
          print(
            `approved ${receipt.step} of ${target.workflowId} as ${receipt.approver}: ${receipt.stillNeeded ? `${receipt.stillNeeded} more approver(s) needed` : 'the run continues'}`,
          );
        } catch (err) {
          if (err instanceof WorkflowUpdateFailedError)
            throw new OperatorError(`refused: ${err.cause?.message ?? err.message}`);
          throw err;
        }
      },
    );
  program
    .command('abort <workflowId>')
    .description('abort a run: before any change it stops at once; once changing, at the next gate')
    .requiredOption('--as <name>', 'who aborts')
    .requiredOption('--reason <text>', 'why')
    .action(async (workflowId: string, o: { as: string; reason: string }) => {
      const { handle, info } = await handleFor(workflowId);
      if (info.status.name !== 'RUNNING') throw new OperatorError(`${workflowId} is not running (${info.status.name})`);
      await handle.signal(abortSignal, { by: o.as, reason: o.reason });
      print(`abort sent to ${workflowId} by ${o.as}: ${o.reason}`);
    });

  /** The run that waits for approvals: the run itself, or the drill's active child. */
  async function waitingRun(workflowId: string) {
    const { handle, info } = await handleFor(workflowId);
    if (info.status.name !== 'RUNNING') throw new OperatorError(`${workflowId} is not running (${info.status.name})`);
    const status = (await handle.query(statusQuery)) as DrillStatus;
    if (status.activeChild) {
      const child = await handleFor(status.activeChild);
      return {
        workflowId: status.activeChild,
        runId: child.info.runId,
        handle: child.handle,
        status: await child.handle.query(statusQuery),
      };
    }
    return { workflowId, runId: info.runId, handle, status: status as RunbookStatus };
  }

  /** `ssh-keygen -Y sign` of `message` (on stdin) with the key at `key`: the armored signature. */
  function signApproval(message: string, key: string): string {
    const r = spawnSync('ssh-keygen', ['-Y', 'sign', '-n', APPROVAL_SIGNATURE_NAMESPACE, '-f', key], {
      input: message,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    if (r.status !== 0 || !r.stdout.includes('BEGIN SSH SIGNATURE'))
      throw new OperatorError(`could not sign with ${key}: ${(r.stderr || r.error?.message || '').trim()}`);
    return r.stdout;
  }

  // ------------------------------------------------------------------ status
  program
    .command('status <target>')
    .description('a run (workflow id) step by step, or a service: its runbooks and latest readiness')
    .option('--watch', 'refresh until the run closes')
    .option('--json', 'machine-readable')
    .action(async (target: string, o: { watch?: boolean; json?: boolean }) => {
      if (inventory().services.some((s) => s.name === target)) return serviceStatus(target, Boolean(o.json));
      for (;;) {
        const snapshot = await runStatus(target);
        if (o.json) json(snapshot);
        else print(formatStatus(snapshot));
        if (!o.watch || snapshot.state !== 'RUNNING') return;
        await new Promise((r) => setTimeout(r, options.watchIntervalMs ?? 2000));
        if (!o.json) print('');
      }
    });

  async function runStatus(workflowId: string) {
    const { handle, info } = await handleFor(workflowId);
    let status: RunbookStatus | DrillStatus | null = null;
    try {
      status = await handle.query(statusQuery);
    } catch {
      status = null; // not started yet, or a run without a status query
    }
    let child: { workflowId: string; status: RunbookStatus } | null = null;
    const active = (status as DrillStatus | null)?.activeChild;
    if (active) {
      const h = (await temporal()).workflow.getHandle(active);
      child = { workflowId: active, status: await h.query(statusQuery).catch(() => null as unknown as RunbookStatus) };
    }
    return {
      workflowId,
      type: info.type,
      state: info.status.name,
      startTime: info.startTime,
      closeTime: info.closeTime ?? null,
      status,
      child,
    };
  }

  function formatStatus(s: Awaited<ReturnType<typeof runStatus>>): string {
    const lines = [`${s.workflowId}  ${s.type}  ${s.state}  started ${s.startTime.toISOString()}`];
    const describe = (st: RunbookStatus, indent: string) => {
      lines.push(`${indent}phase: ${st.phase}`);
      // The live roles the run read from the servers (its topology step), not the inventory's names.
      if (st.topology) lines.push(`${indent}roles: ${st.topology.state}: ${st.topology.detail}`);
      for (const step of st.steps) {
        const took =
          step.startedAt && step.endedAt
            ? `${Math.round((Date.parse(step.endedAt) - Date.parse(step.startedAt)) / 100) / 10} s`
            : step.startedAt
              ? 'running'
              : '';
        lines.push(
          `${indent}  ${mark(step.state)} ${step.name.padEnd(24)} ${step.state.padEnd(9)} ${took.padEnd(9)} ${step.detail ?? ''}`,
        );
      }
      if (st.pendingApproval) {
        const p = st.pendingApproval;
        lines.push(
          `${indent}WAITING for approval of "${p.step}" (${p.needed} more; approvers ${p.approvers.join(', ')}; deadline ${p.deadline})`,
          `${indent}  ${p.question}`,
          `${indent}  drctl approve ${s.child?.workflowId ?? s.workflowId} --step ${p.step} --as <name>${p.requireOverrideRpo ? ' --override-rpo' : ''}${p.requireUnfencedAck ? ' --ack-unfenced' : ''}`,
        );
      }
      if (st.measured.rtoSeconds !== null || st.measured.rpoSeconds !== null)
        lines.push(
          `${indent}measured: RTO ${st.measured.rtoSeconds ?? '—'} s (target ${st.targets.rtoSeconds}), RPO ${st.measured.rpoSeconds ?? '—'} s (target ${st.targets.rpoSeconds})`,
        );
      for (const r of st.rejectedApprovals ?? [])
        lines.push(`${indent}rejected approval by ${r.approval.approver}: ${r.reason}`);
    };
    if (s.status) describe(s.status, '  ');
    if (s.child?.status) {
      lines.push(`  └ ${s.child.workflowId}`);
      describe(s.child.status, '    ');
    }
    return lines.join('\n');
  }

  async function serviceStatus(service: string, asJson: boolean) {
    const c = await temporal();
    const out: Record<string, unknown> = {};
    for (const runbook of ['failover', 'failback', 'drill']) {
      const id = `${runbook}-${service}`;
      try {
        const info = await c.workflow.getHandle(id).describe();
        out[runbook] = {
          workflowId: id,
          state: info.status.name,
          startTime: info.startTime,
          closeTime: info.closeTime ?? null,
        };
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        out[runbook] = null;
      }
    }
    out.roles = await liveRoles(service);
    out.readiness = await latestReadiness(service);
    if (asJson) return json({ service, ...out });
    print(`service ${service}`);
    const roles = out.roles as Topology | { error: string };
    if ('error' in roles) print(`  roles      could not be read now: ${roles.error}`);
    else {
      print(`  roles      ${roles.state.toUpperCase()}: ${roles.detail} (read ${roles.readAt})`);
      for (const m of roles.members) {
        const role = m.reachable ? (m.readOnly ? 'read-only' : 'WRITABLE ') : 'unreachable';
        const from = m.replication?.configured
          ? `replicates from ${m.replication.sourceServer ?? m.replication.source}`
          : '';
        print(`    ${m.server.padEnd(14)} ${role}  ${from}${m.error ? ` (${m.error})` : ''}`);
      }
    }
    for (const runbook of ['failover', 'failback', 'drill']) {
      const r = out[runbook] as { workflowId: string; state: string; startTime: Date } | null;
      print(`  ${runbook.padEnd(10)} ${r ? `${r.workflowId} ${r.state} (started ${r.startTime.toISOString()})` : '—'}`);
    }
    const rd = out.readiness as Awaited<ReturnType<typeof latestReadiness>>;
    if (!rd) print('  readiness  no readiness run yet (drctl readiness ' + service + ')');
    else {
      print(`  readiness  ${rd.ready ? 'READY' : 'NOT READY'} at ${rd.at} (${rd.workflowId})`);
      for (const ch of rd.checks) print(`    ${ch.ok ? '✓' : '✗'} ${ch.name}: ${ch.detail}`);
    }
  }

  /**
   * Who is writable now, read from the servers by a worker (serviceRoles: the worker holds the database
   * credentials, drctl does not), never the roles of the last readiness run.
   */
  async function liveRoles(service: string): Promise<Topology | { error: string }> {
    const c = await temporal();
    try {
      return (await c.workflow.execute('serviceRoles', {
        taskQueue: queue(),
        workflowId: `roles-${service}-${stamp()}-${Math.random().toString(36).slice(2, 6)}`,
        args: [{ service }],
        workflowExecutionTimeout: '60s',
      })) as Topology;
    } catch (err) {
      return { error: rootCauseMessage(err) };
    }
  }

  /** The newest finished readiness of a service: a readiness run, or a failover dry run. */
  async function latestReadiness(service: string) {
    const c = await temporal();
    const query = `ExecutionStatus = 'Completed' AND ((WorkflowType = 'readiness' AND WorkflowId STARTS_WITH 'readiness-${service}') OR (DrService = '${service}' AND DrRunbook = 'failover' AND DrMode = 'dry-run'))`;
    for await (const wf of c.workflow.list({ query, pageSize: 5 })) {
      const result = (await c.workflow.getHandle(wf.workflowId, wf.runId).result()) as {
        ready?: boolean;
        checks?: { name: string; ok: boolean; detail: string }[];
        readiness?: { ready: boolean; checks: { name: string; ok: boolean; detail: string }[] };
      };
      const r = result.readiness ?? result;
      return {
        workflowId: wf.workflowId,
        at: (wf.closeTime ?? wf.startTime).toISOString(),
        ready: Boolean(r.ready),
        checks: r.checks ?? [],
      };
    }
    return null;
  }

  // ------------------------------------------------------------------ runs
  program
    .command('runs')
    .description('recent runbook runs with outcome and measured RTO/RPO')
    .option('--service <service>')
    .option('--runbook <runbook>', 'failover, failback, drill, readiness, ...')
    .option('--limit <n>', 'how many', (v) => Number(v), 20)
    .option('--json', 'machine-readable')
    .action(async (o: { service?: string; runbook?: string; limit: number; json?: boolean }) => {
      if (o.service) requireService(o.service);
      const c = await temporal();
      const clauses = [
        o.service ? `DrService = '${o.service}'` : `DrService IS NOT NULL`,
        ...(o.runbook ? [`DrRunbook = '${o.runbook.replace(/'/g, '')}'`] : []),
      ];
      const rows: RunRow[] = [];
      for await (const wf of c.workflow.list({ query: clauses.join(' AND '), pageSize: o.limit })) {
        rows.push(await runRow(c, wf));
        if (rows.length >= o.limit) break;
      }
      if (o.json) return json(rows);
      if (rows.length === 0) return print('no runs');
      for (const r of rows)
        print(
          [
            r.workflowId.padEnd(28),
            (r.runbook ?? r.type).padEnd(10),
            (r.mode ?? '').padEnd(10),
            r.state.padEnd(10),
            (r.outcome ?? '').padEnd(16),
            `RTO ${r.rtoSeconds ?? '—'} s / ${r.rtoTargetSeconds ?? '—'}`.padEnd(18),
            `RPO ${r.rpoSeconds ?? '—'} s / ${r.rpoTargetSeconds ?? '—'}`.padEnd(16),
            r.startTime,
          ].join(' '),
        );
    });

  async function runRow(c: Client, wf: WorkflowExecutionInfo): Promise<RunRow> {
    const sa = wf.searchAttributes as Record<string, string[] | undefined>;
    const row: RunRow = {
      workflowId: wf.workflowId,
      runId: wf.runId,
      type: wf.type,
      runbook: sa.DrRunbook?.[0],
      service: sa.DrService?.[0],
      mode: sa.DrMode?.[0],
      outcome: sa.DrOutcome?.[0] ?? null,
      state: wf.status.name,
      startTime: wf.startTime.toISOString(),
      closeTime: wf.closeTime?.toISOString() ?? null,
    };
    if (wf.status.name === 'COMPLETED' || wf.status.name === 'FAILED') {
      const result = await resultOf(c, wf.workflowId, wf.runId);
      const m = result as { measured?: RunbookStatus['measured']; targets?: RunbookStatus['targets'] } | null;
      row.rtoSeconds = m?.measured?.rtoSeconds ?? null;
      row.rpoSeconds = m?.measured?.rpoSeconds ?? null;
      row.rtoTargetSeconds = m?.targets?.rtoSeconds ?? null;
      row.rpoTargetSeconds = m?.targets?.rpoSeconds ?? null;
    }
    return row;
  }

  /** A closed run's result; for a failed drill, the report it carries in its failure details. */
  async function resultOf(c: Client, workflowId: string, runId?: string): Promise<unknown> {
    try {
      return await c.workflow.getHandle(workflowId, runId).result();
    } catch (err) {
      if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.details?.length)
        return err.cause.details[0];
      return null;
    }
  }

  // ------------------------------------------------------------------ report
  program
    .command('report <workflowId>')
    .description('the report of a finished run: Markdown (default), HTML with charts, or JSON')
    .option('--html <file>', 'write a self-contained HTML report with the timeline and RTO/RPO charts')
    .option('--md [file]', 'Markdown (to a file, or printed)')
    .option('--json', 'the run result as JSON')
    .action(async (workflowId: string, o: { html?: string; md?: string | boolean; json?: boolean }) => {
      const c = await temporal();
      const { info } = await handleFor(workflowId);
      if (info.status.name === 'RUNNING')
        throw new OperatorError(`${workflowId} is still running: drctl status ${workflowId} --watch`);
      const result = await resultOf(c, workflowId, info.runId);
      if (!result || typeof result !== 'object' || !('service' in result))
        throw new OperatorError(`${workflowId} (${info.type}) ended ${info.status.name} without a report`);
      if (o.json) return json(result);
      const view = await viewOf(c, result as { service: string; format?: string }, workflowId, info.runId);
      if (o.html) {
        writeFileSync(o.html, await renderHtml(view));
        print(`wrote ${o.html}`);
      }
      if (typeof o.md === 'string') {
        writeFileSync(o.md, renderMarkdown(view));
        print(`wrote ${o.md}`);
      } else if (o.md || !o.html) print(renderMarkdown(view));
    });

  /** A drill's own view; any other runbook's, with the trend of that runbook's earlier runs of the service. */
  async function viewOf(
    c: Client,
    result: { service: string; format?: string },
    workflowId: string,
    runId: string,
  ): Promise<ReportView> {
    if (result.format === 'drbook-drill/1') {
      const drill = result as unknown as DrillReport;
      // The worker stored the identities when it published the report; an older report gets them from history.
      if (drill.approvals.every((a) => a.identity !== undefined)) return drillView(drill);
      const runs = [{ workflowId, runId }, ...drill.children.map((ch) => ch.workflowId)];
      return identifyApprovals(drillView(drill), await approvalMessagesOf(c, runs));
    }
    const r = result as Parameters<typeof runbookView>[1];
    const trend = [];
    const query = `DrService = '${r.service}' AND DrRunbook = '${r.runbook ?? ''}' AND ExecutionStatus = 'Completed'`;
    for await (const wf of c.workflow.list({ query, pageSize: 20 })) {
      const old = (await resultOf(c, wf.workflowId, wf.runId)) as Parameters<typeof runbookView>[1] | null;
      if (!old?.measured || !old.targets) continue;
      trend.push({
        at: wf.startTime.toISOString(),
        label: `${wf.workflowId} ${wf.startTime.toISOString()}`,
        rtoSeconds: old.measured.rtoSeconds,
        rpoSeconds: old.measured.rpoSeconds,
        rtoTargetSeconds: old.targets.rtoSeconds,
        rpoTargetSeconds: old.targets.rpoSeconds,
      });
      if (trend.length >= 20) break;
    }
    // Each approval with the client identity Temporal recorded for it, from this run's history.
    return identifyApprovals(
      runbookView(workflowId, r, trend.reverse()),
      await approvalMessagesOf(c, [{ workflowId, runId }]),
    );
  }

  // ------------------------------------------------------------------ readiness
  program
    .command('readiness [service]')
    .description('run every read-only readiness check now (default: every service)')
    .option('--json', 'machine-readable')
    .action(async (service: string | undefined, o: { json?: boolean }) => {
      const services = service ? [requireService(service)] : inventory().services.map((s) => s.name);
      const c = await temporal();
      const reports = await Promise.all(
        services.map(
          (s) =>
            c.workflow.execute('readiness', {
              taskQueue: queue(),
              workflowId: `readiness-${s}-${stamp()}`,
              args: [{ service: s }],
            }) as Promise<{ service: string; ready: boolean; checks: { name: string; ok: boolean; detail: string }[] }>,
        ),
      );
      if (o.json) return json(reports);
      for (const r of reports) {
        print(`${r.service}: ${r.ready ? 'READY' : 'NOT READY'}`);
        for (const ch of r.checks) print(`  ${ch.ok ? '✓' : '✗'} ${ch.name}: ${ch.detail}`);
      }
      if (reports.some((r) => !r.ready)) process.exitCode = 2;
    });

  // ------------------------------------------------------------------ schedules (scripts/schedules.ts)
  program
    .command('schedules')
    .description("drbook's Temporal Schedules: list them, or reconcile the server with the inventory's schedules")
    .addArgument(new Argument('<action>', 'list | reconcile').choices(['list', 'reconcile']))
    .option('--dry-run', 'reconcile: report what would change, change nothing')
    .action(async (action: string, o: { dryRun?: boolean }) => {
      await schedulesCommand(
        await temporal(),
        action,
        {
          dryRun: Boolean(o.dryRun),
          ...(action === 'reconcile' ? { inventory: inventory() } : {}),
          taskQueue: queue(),
        },
        print,
      );
    });

  program.hook('postAction', async () => {
    if (connection) await connection.close();
    connection = undefined;
    if (!options.client) client = undefined;
  });
  return program;
}

interface RunRow {
  workflowId: string;
  runId: string;
  type: string;
  runbook?: string;
  service?: string;
  mode?: string;
  outcome: string | null;
  state: string;
  startTime: string;
  closeTime: string | null;
  rtoSeconds?: number | null;
  rpoSeconds?: number | null;
  rtoTargetSeconds?: number | null;
  rpoTargetSeconds?: number | null;
}

function mark(state: string): string {
  return { succeeded: '✓', failed: '✗', skipped: '·', waiting: '…', running: '▶', pending: ' ' }[state] ?? ' ';
}

/** Run drctl with argv; returns the exit code (0 ok, 1 operator error). */
export async function runDrctl(argv: string[], options: DrctlOptions = {}): Promise<number> {
  const program = buildProgram(options);
  const err = (t: string) => (options.io ? options.io.err(t) : process.stderr.write(t));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof OperatorError) {
      err(`drctl: ${e.message}\n`);
      return 1;
    }
    if (e instanceof WorkflowFailedError) {
      err(`drctl: run failed: ${e.cause?.message ?? e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (require.main === module) {
  runDrctl(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
