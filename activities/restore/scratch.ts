/**
 * Scratch databases on a scratch server: always named `restore_…` (dropScratchDatabase refuses any other name, so a
 * mistake can never drop a real database), reached through a connection of their own, dropped when a test ends.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Context } from '@temporalio/activity';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { ErrorType } from '../../contract';
import { failure } from '../errors';
import { mysqlFailure, type MysqlPools } from '../mysql';
import type { ScratchIsolation } from '../mysql/scratch-isolation';
import { quoteIdentifier } from '../process/quote';

/** Scratch databases carry this prefix and nothing else does: the only names drbook will drop. */
export const SCRATCH_DATABASE = /^restore_[a-z0-9_]{1,56}$/;

export interface ScratchMapping {
  source: string;
  scratch: string;
}

export function corrupt(message: string, details: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.BackupCorrupt,
    message,
    nonRetryable: true,
    details: [details],
  });
}

export function requireScratchNames(names: string[]): void {
  const bad = names.filter((n) => !SCRATCH_DATABASE.test(n));
  if (bad.length || new Set(names).size !== names.length)
    throw failure(ErrorType.InvalidInput, `not scratch database names (restore_…, distinct): ${names.join(', ')}`);
}

export function cancelledOr(err: unknown, ctx: Context | null): unknown {
  if (ctx?.cancellationSignal.aborted) {
    const reason: unknown = ctx.cancellationSignal.reason;
    return reason instanceof CancelledFailure ? reason : new CancelledFailure('restore cancelled');
  }
  return err;
}

/** Connections to scratch servers, and the drop of scratch databases on them. */
export function scratchDatabases(pools: MysqlPools, isolation: ScratchIsolation) {
  async function connectTo(server: string, database?: string): Promise<mysql.Connection> {
    const target = pools.target(server);
    try {
      return await mysql.createConnection({ ...target, database, connectTimeout: 5000, multipleStatements: false });
    } catch (err) {
      throw mysqlFailure(server, err);
    }
  }

  /**
   * Drop the scratch databases that exist. One that does not is not dropped "IF EXISTS": that statement is written
   * to the binlog all the same, and on a server that is not scratch after all it would be an errant transaction.
   */
  async function dropDatabases(
    server: string,
    names: string[],
    isolated = false,
  ): Promise<{ dropped: string[]; absent: string[] }> {
    requireScratchNames(names);
    const conn = await connectTo(server);
    try {
      const [present] = await conn.query<RowDataPacket[]>(
        'SELECT SCHEMA_NAME AS s FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?)',
        [names],
      );
      const existing = new Set((present as { s: string }[]).map((r) => r.s));
      const absent = names.filter((n) => !existing.has(n));
      if (existing.size && !isolated) await isolation.requireScratch(server, 'dropping scratch databases on it');
      const dropped: string[] = [];
      for (const name of names.filter((n) => existing.has(n))) {
        // A session still loading (a killed client's server thread) would hold the drop up: end it first.
        const [sessions] = await conn.query<RowDataPacket[]>(
          'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
          [name],
        );
        for (const { id } of sessions as { id: number }[])
          await conn.query(`KILL ${Number(id)}`).catch(() => undefined);
        await conn.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)}`);
        dropped.push(name);
      }
      return { dropped, absent };
    } catch (err) {
      throw err instanceof ApplicationFailure ? err : mysqlFailure(server, err);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  return { connectTo, dropDatabases };
}

export type ScratchDatabases = ReturnType<typeof scratchDatabases>;
