/**
 * GTID arithmetic for both flavours, so replica lag is counted in transactions rather
 * than trusted from Seconds_Behind_Master (which reads 0 when the IO thread is stuck).
 *
 * MariaDB: a position is "domain-server-seq" per domain, comma separated ("0-1-50,1-2-7");
 *          sequence numbers grow per domain, so the gap is primary.seq - replica.seq.
 * MySQL:   a set is "uuid:1-100:105,uuid2:1-5"; the gap is the size of primary \ replica.
 */

export type GtidFlavor = 'mariadb' | 'mysql';

/** The flavour of a server, from its VERSION() ("10.11.6-MariaDB-log", "8.0.36"). */
export const flavorOfVersion = (version: string): GtidFlavor => (/mariadb/i.test(version) ? 'mariadb' : 'mysql');

export function parseMariadbPosition(pos: string): Map<number, bigint> {
  const byDomain = new Map<number, bigint>();
  for (const part of pos
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
    if (!m) throw new Error(`not a MariaDB GTID position: "${part}"`);
    const domain = Number(m[1]);
    const seq = BigInt(m[3]);
    const prev = byDomain.get(domain);
    if (prev === undefined || seq > prev) byDomain.set(domain, seq);
  }
  return byDomain;
}

type Interval = [bigint, bigint];

export function parseMysqlGtidSet(set: string): Map<string, Interval[]> {
  const byUuid = new Map<string, Interval[]>();
  for (const part of set.replace(/\s+/g, '').split(',').filter(Boolean)) {
    const [uuidRaw, ...ranges] = part.split(':');
    const uuid = uuidRaw.toLowerCase();
    if (!/^[0-9a-f-]{36}$/.test(uuid) || ranges.length === 0) throw new Error(`not a MySQL GTID set: "${part}"`);
    const list = byUuid.get(uuid) ?? [];
    for (const r of ranges) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(r);
      if (!m) throw new Error(`not a MySQL GTID interval: "${r}" in "${part}"`);
      list.push([BigInt(m[1]), BigInt(m[2] ?? m[1])]);
    }
    byUuid.set(uuid, normalise(list));
  }
  return byUuid;
}

function normalise(list: Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Interval[] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) last[1] = hi > last[1] ? hi : last[1];
    else out.push([lo, hi]);
  }
  return out;
}

function size(list: Interval[]): bigint {
  return list.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n);
}

/** |a ∩ b| for two normalised interval lists. */
function overlap(a: Interval[], b: Interval[]): bigint {
  let n = 0n;
  for (const [alo, ahi] of a) {
    for (const [blo, bhi] of b) {
      const lo = alo > blo ? alo : blo;
      const hi = ahi < bhi ? ahi : bhi;
      if (lo <= hi) n += hi - lo + 1n;
    }
  }
  return n;
}

/**
 * Transactions the source has that the replica does not. Returns a number (capped at
 * MAX_SAFE_INTEGER) because it is shown to people and compared with thresholds.
 */
export function transactionsBehind(flavor: GtidFlavor, source: string, replica: string): number {
  let gap = 0n;
  if (flavor === 'mariadb') {
    const s = parseMariadbPosition(source);
    const r = parseMariadbPosition(replica);
    for (const [domain, seq] of s) {
      const have = r.get(domain) ?? 0n;
      if (seq > have) gap += seq - have;
    }
  } else {
    const s = parseMysqlGtidSet(source);
    const r = parseMysqlGtidSet(replica);
    for (const [uuid, intervals] of s) gap += size(intervals) - overlap(intervals, r.get(uuid) ?? []);
  }
  return gap > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(gap);
}

/**
 * MariaDB: transactions `mine` holds that `sourceState` (the source's @@gtid_binlog_state: the
 * last GTID per domain AND server id) lacks. Comparing per domain only misses a divergence:
 * after a crash the old primary may hold 0-1-4112 while the new primary wrote 0-2-4112 onward.
 */
export function mariadbErrantTransactions(mine: string, sourceState: string): number {
  const last = (state: string) => {
    const byPair = new Map<string, bigint>();
    for (const part of state
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
      if (!m) throw new Error(`not a MariaDB GTID position: "${part}"`);
      const key = `${m[1]}-${m[2]}`;
      const seq = BigInt(m[3]);
      if ((byPair.get(key) ?? -1n) < seq) byPair.set(key, seq);
    }
    return byPair;
  };
  const source = last(sourceState);
  const sourceByDomain = parseMariadbPosition(sourceState);
  let errant = 0n;
  for (const [pair, seq] of last(mine)) {
    const have = source.get(pair);
    if (have !== undefined) {
      if (seq > have) errant += seq - have;
    } else {
      // The source never saw this server in this domain, so whatever it wrote is errant: everything past the
      // source's own position, and at least this one transaction however low its number (sequence numbers of
      // different servers interleave: the source's own later writes can pass it).
      const domainSeq = sourceByDomain.get(Number(pair.split('-')[0])) ?? 0n;
      errant += seq > domainSeq ? seq - domainSeq : 1n;
    }
  }
  return Number(errant);
}

/** True when the replica holds something the source never had (errant transactions: a split-brain sign). */
export function hasErrantTransactions(flavor: GtidFlavor, source: string, replica: string): boolean {
  return transactionsBehind(flavor, replica, source) > 0;
}
