/**
 * Runs after the suite (scripts/stack.sh test sets DRBOOK_AWS_CALL_LOG for it): every AWS call an activity made
 * was recorded by the SDK middleware in activities/aws/clients.ts, with the task queue the activity ran on, in its
 * stack's call log (DRBOOK_AUDIT_AWS_CALL_LOGS lists them all, ':'-separated, when the suite ran on two stacks). The
 * IAM policies the workers run under (deploy/iam/) must grant each call's IAM actions on the side that made it
 * (the base queue: primary-worker.json; the DR region's queue: dr-worker.json), and must grant nothing no runbook
 * called, save the few actions below that only paths the sandbox does not take call, each with its reason. The policies
 * are also checked by moto's IAM policy validator (the grammar AWS's CreatePolicy enforces) and for deletes left
 * unscoped.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { RecordedAwsCall } from '../../activities/aws/clients';
import { sandbox } from '../helpers/stack';

const ROOT = path.join(__dirname, '../..');
const CALL_LOGS = (
  process.env.DRBOOK_AUDIT_AWS_CALL_LOGS ??
  process.env.DRBOOK_AWS_CALL_LOG ??
  path.join(process.env.DRBOOK_DATA ?? path.join(ROOT, '.data'), 'run/aws-calls.jsonl')
).split(path.delimiter);

type Side = 'primary' | 'dr';
const POLICY: Record<Side, string> = {
  primary: 'deploy/iam/primary-worker.json',
  dr: 'deploy/iam/dr-worker.json',
};

const IAM_PREFIX: Record<string, string> = {
  EC2: 'ec2',
  RDS: 'rds',
  Route53: 'route53',
  ElasticLoadBalancingV2: 'elasticloadbalancing',
  SNS: 'sns',
  KMS: 'kms',
  S3: 's3',
};

/**
 * SDK commands whose IAM action is not `<prefix>:<command name>`, or that need more than one. Tags given at
 * creation need the tagging action too (EC2 CreateTags with ec2:CreateAction, RDS AddTagsToResource).
 */
const IAM_ACTIONS: Record<string, string[]> = {
  'S3:HeadObject': ['s3:GetObject'],
  'S3:HeadBucket': ['s3:ListBucket'],
  'S3:ListObjectsV2': ['s3:ListBucket'],
  'S3:CreateMultipartUpload': ['s3:PutObject'],
  'S3:UploadPart': ['s3:PutObject'],
  'S3:CompleteMultipartUpload': ['s3:PutObject'],
  'S3:ListMultipartUploads': ['s3:ListBucketMultipartUploads'],
  'S3:CopyObject': ['s3:GetObject', 's3:PutObject'],
  'S3:DeleteObjects': ['s3:DeleteObject'],
  'S3:ListObjectVersions': ['s3:ListBucketVersions'],
  'S3:GetBucketLifecycleConfiguration': ['s3:GetLifecycleConfiguration'],
  'S3:PutBucketLifecycleConfiguration': ['s3:PutLifecycleConfiguration'],
  'S3:GetObjectLockConfiguration': ['s3:GetBucketObjectLockConfiguration'],
  'S3:PutObjectLockConfiguration': ['s3:PutBucketObjectLockConfiguration'],
  'EC2:CreateSnapshot': ['ec2:CreateSnapshot', 'ec2:CreateTags'],
  'EC2:CopySnapshot': ['ec2:CopySnapshot', 'ec2:CreateTags'],
  'RDS:CreateDBSnapshot': ['rds:CreateDBSnapshot', 'rds:AddTagsToResource'],
  'RDS:RestoreDBInstanceFromDBSnapshot': ['rds:RestoreDBInstanceFromDBSnapshot', 'rds:AddTagsToResource'],
};

/** A VersionId turns S3's object reads and deletes into their …Version actions. */
const VERSIONED: Record<string, string> = {
  's3:GetObject': 's3:GetObjectVersion',
  's3:DeleteObject': 's3:DeleteObjectVersion',
};

function iamActions(call: Pick<RecordedAwsCall, 'service' | 'command' | 'versioned' | 'objectLock'>): string[] {
  const prefix = IAM_PREFIX[call.service];
  if (!prefix) throw new Error(`no IAM prefix for the SDK client ${call.service}Client: add it to IAM_PREFIX`);
  let actions = IAM_ACTIONS[`${call.service}:${call.command}`] ?? [`${prefix}:${call.command}`];
  if (call.versioned) actions = actions.map((a) => VERSIONED[a] ?? a);
  // An upload that sets an Object Lock mode and retain-until date needs the retention action too.
  if (call.objectLock) actions = [...actions, 's3:PutObjectRetention'];
  return actions;
}

/**
 * Granted although a suite run may not call them: each is called only on a path the sandbox does not take, or not
 * in every run, and is needed there. Keep this short; every entry says which path.
 */
const MAY_GO_UNCALLED: Record<Side, Record<string, string>> = {
  primary: {
    'ec2:DeleteSnapshot':
      "snapshot retention (deleteSnapshotBackups) once an EBS snapshot ages out of the GFS keep; the suite's " +
      'snapshots are too young, and backup-snapshot-retention.test.ts calls the activity directly (outside a ' +
      'Temporal activity, so the recorder does not see it)',
    'rds:DeleteDBSnapshot':
      "snapshot retention (deleteSnapshotBackups) once an RDS snapshot ages out of the GFS keep; the suite's " +
      'snapshots are too young, and backup-snapshot-retention.test.ts calls the activity directly (outside a ' +
      'Temporal activity, so the recorder does not see it)',
    's3:DeleteObject':
      'retention of backup objects (deleteBackups) once a backup ages out, and an attempt cleaning up its own cut ' +
      'upload (test/chaos/destination-s3-cut.test.ts); most backups in the suite are too young for retention',
    's3:AbortMultipartUpload':
      'an upload cut mid-way (test/chaos/destination-s3-cut.test.ts), or parts an earlier attempt left behind',
    's3:DeleteObjectVersion':
      'retention in a destination with objectLock once a lock has ended (each version is deleted); the suite ' +
      "cannot wait for a lock to end, and moto's locks cannot be shortened " +
      '(test/integration/backup-object-lock.test.ts)',
  },
  dr: {
    'ec2:DeleteSnapshot':
      'snapshot retention (deleteSnapshotBackups) once a DR copy of an EBS snapshot ages out of the GFS keep; the ' +
      "suite's snapshots are too young, and backup-snapshot-retention.test.ts calls the activity directly (outside " +
      'a Temporal activity, so the recorder does not see it)',
    'rds:DeleteDBSnapshot':
      'snapshot retention (deleteSnapshotBackups) once a DR copy of an RDS snapshot ages out of the GFS keep; the ' +
      "suite's snapshots are too young, and backup-snapshot-retention.test.ts calls the activity directly (outside " +
      'a Temporal activity, so the recorder does not see it)',
    'ec2:DescribeSecurityGroups':
      'awsFence.action revoke-ingress (activities/aws/fence.ts): no sandbox service fences by security group',
    'ec2:RevokeSecurityGroupIngress':
      'awsFence.action revoke-ingress (activities/aws/fence.ts): no sandbox service fences by security group',
    'route53:GetHostedZone':
      'dns.hostedZoneId (split-horizon zones): the sandbox zone is unique, so its runbooks look it up by name',
    's3:GetObject':
      'a cold failover or restore in a real outage reads the offsite copy in the DR region; the sandbox has the ' +
      'local copy, which is read first (SOURCE_ORDER in activities/restore/index.ts)',
  },
};

interface Statement {
  Sid?: string;
  Effect?: string;
  Action?: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, unknown>;
}

const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function readPolicy(side: Side): { document: { Version?: string; Statement?: Statement[] }; text: string } {
  const text = readFileSync(path.join(ROOT, POLICY[side]), 'utf8');
  return { document: JSON.parse(text) as { Version?: string; Statement?: Statement[] }, text };
}

function granted(side: Side): Set<string> {
  const { document } = readPolicy(side);
  return new Set((document.Statement ?? []).flatMap((s) => list(s.Action)));
}

/** Which worker's role made a call: the DR region's queue is `<base>-<dr region>` (contract/names.ts). */
const sideOf = (call: RecordedAwsCall, drRegion: string): Side =>
  call.taskQueue.endsWith(`-${drRegion}`) ? 'dr' : 'primary';

describe('the IAM policies in deploy/iam', () => {
  test.each(['primary', 'dr'] as Side[])('%s-worker.json is a valid, scoped, allow-only policy', (side) => {
    const { document, text } = readPolicy(side);
    expect(document.Version).toBe('2012-10-17');
    const problems: string[] = [];
    for (const [i, s] of (document.Statement ?? []).entries()) {
      const at = `Statement[${i}] ${s.Sid ?? '(no Sid)'}`;
      if (!s.Sid) problems.push(`${at}: every statement names what it is for (Sid)`);
      if (s.Effect !== 'Allow') problems.push(`${at}: Effect ${s.Effect}, only Allow statements are expected`);
      for (const a of list(s.Action)) if (a.includes('*')) problems.push(`${at}: wildcard action ${a}`);
      // Deletes only on drbook's own objects and snapshots: a named resource pattern or a tag condition.
      const deletes = list(s.Action).filter((a) => /:Delete/.test(a));
      if (deletes.length && list(s.Resource).includes('*') && !s.Condition)
        problems.push(`${at}: ${deletes.join(', ')} on every resource`);
    }
    expect(problems).toEqual([]);
    // The grammar AWS enforces on CreatePolicy, as moto implements it (actions, ARNs, condition blocks).
    const validator = spawnSync(
      path.join(ROOT, '.venv/bin/python'),
      [
        '-c',
        'import sys\nfrom moto.iam.policy_validation import IAMPolicyDocumentValidator\n' +
          'IAMPolicyDocumentValidator(sys.stdin.read()).validate()',
      ],
      { input: text, encoding: 'utf8' },
    );
    expect({ exit: validator.status, stderr: validator.stderr.split('\n').slice(-2).join('\n') }).toEqual({
      exit: 0,
      stderr: '',
    });
  });
});

describe('every AWS action the runbooks called during the suite', () => {
  test('is granted to the side that called it, and nothing else is granted', () => {
    for (const log of CALL_LOGS)
      if (!existsSync(log))
        throw new Error(`no AWS call log at ${log}: run the suite with DRBOOK_AWS_CALL_LOG set (stack.sh test does)`);
    const { inventory } = sandbox();
    const calls = CALL_LOGS.flatMap((log) =>
      readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as RecordedAwsCall),
    );
    expect(calls.length).toBeGreaterThan(100); // the suite ran real runbooks before this

    const called: Record<Side, Map<string, Set<string>>> = { primary: new Map(), dr: new Map() };
    for (const call of calls) {
      for (const action of iamActions(call)) {
        const by = called[sideOf(call, inventory.regions.dr)];
        by.set(action, (by.get(action) ?? new Set()).add(`${call.activity} (${call.service} ${call.command})`));
      }
    }
    const report: Record<Side, { missing: string[]; unused: string[] }> = {
      primary: { missing: [], unused: [] },
      dr: { missing: [], unused: [] },
    };
    for (const side of ['primary', 'dr'] as Side[]) {
      const grants = granted(side);
      for (const [action, by] of called[side])
        if (!grants.has(action)) report[side].missing.push(`${action}: called by ${[...by].sort().join(', ')}`);
      for (const action of grants)
        if (!called[side].has(action) && !(action in MAY_GO_UNCALLED[side])) report[side].unused.push(action);
      for (const action of Object.keys(MAY_GO_UNCALLED[side]))
        if (!grants.has(action)) report[side].unused.push(`${action} is in MAY_GO_UNCALLED but not granted`);
      console.log(
        `${POLICY[side]}: ${grants.size} actions granted, ${called[side].size} called ` +
          `(${[...called[side].keys()].sort().join(' ')})`,
      );
    }
    expect(report).toEqual({ primary: { missing: [], unused: [] }, dr: { missing: [], unused: [] } });
  });
});
