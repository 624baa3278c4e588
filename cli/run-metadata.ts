/**
 * What a run started by drctl or a schedule shows in the Web UI before it has done anything: a one-line
 * static summary ("failover shop (real): db host lost") in the runs list and on its page, and static
 * details (Markdown): the inventory's view of the service at start. Names and addresses only; secret
 * references are never read here.
 */
import { targetsFor, type Service } from '../contract';

export interface RunMetadata {
  staticSummary: string;
  staticDetails?: string;
}

interface RunInput {
  service?: string;
  services?: string[];
  mode?: string;
  scope?: string;
  reason?: string;
  dryRun?: boolean;
  backupId?: string;
}

/** The summary is one line of at most 200 characters (the runs list shows it in a column). */
export function runMetadata(runbook: string, input: RunInput, service?: Service): RunMetadata {
  const kind = input.dryRun ? 'dry run' : (input.scope ?? input.mode);
  const subject = input.service ?? (input.services?.length ? input.services.join(', ') : 'every service');
  const line = `${runbook} ${subject}${kind ? ` (${kind})` : ''}${input.reason ? `: ${input.reason}` : ''}`;
  const staticSummary = oneLine(line, 200);
  return service ? { staticSummary, staticDetails: serviceDetails(service) } : { staticSummary };
}

export function serviceDetails(svc: Service): string {
  const t = targetsFor(svc);
  const rows: [string, string][] = [
    ['tier', `${svc.tier} (RTO ${t.rtoSeconds} s, RPO ${t.rpoSeconds} s)`],
    ['strategy', svc.strategy],
  ];
  if (svc.database)
    rows.push([
      'database',
      `${svc.database.engine}: primary ${svc.database.primary}` +
        (svc.database.replica ? `, replica ${svc.database.replica}` : ''),
    ]);
  if (svc.rds)
    rows.push([
      'rds',
      `${svc.rds.instance} (${svc.rds.region})` +
        (svc.rds.drReplica ? `, DR replica ${svc.rds.drReplica.instance} (${svc.rds.drReplica.region})` : ''),
    ]);
  if (svc.vip) rows.push(['vip', `${svc.vip.address} (${svc.vip.primaryHost} / DR ${svc.vip.drHost})`]);
  if (svc.dns) rows.push(['dns', `${svc.dns.record} ${svc.dns.type}: ${svc.dns.primaryValue} / DR ${svc.dns.drValue}`]);
  return [
    `### ${svc.name}: the inventory at start`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${oneLine(v, 200).replace(/\|/g, '\\|')} |`),
  ].join('\n');
}

const oneLine = (text: string, max: number) => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};
