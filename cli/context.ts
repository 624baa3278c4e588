/**
 * What every drctl command group shares: where it prints, the Temporal client (connected on first use, with
 * envconfig's TEMPORAL_* settings and drbook's data converter), the inventory (DRBOOK_INVENTORY) and the task queue.
 */
import os from 'node:os';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { Command } from 'commander';
import { InventoryError, type Inventory } from '../contract';
import { loadInventory } from '../config/load';
import { dataConverterFromEnv } from '../contract/codec';

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

/** A run's start time as a workflow id suffix: 20261207T193000Z. */
export const stamp = () =>
  new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

export class DrctlContext {
  readonly io: DrctlIo;
  private client: Client | undefined;
  private connection: Connection | undefined;

  constructor(
    readonly options: DrctlOptions,
    private readonly program: Command,
  ) {
    this.io = options.io ?? { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
    this.client = options.client;
  }

  print = (text = '') => this.io.out(`${text}\n`);
  json = (value: unknown) => this.print(JSON.stringify(value, null, 2));

  /** The task queue the workers serve (--task-queue, DRBOOK_TASK_QUEUE, or drbook's default). */
  queue = () => this.program.opts<{ taskQueue: string }>().taskQueue;

  async temporal(): Promise<Client> {
    if (!this.client) {
      const { connectionOptions, namespace } = loadClientConnectConfig();
      try {
        this.connection = await Connection.connect(connectionOptions);
      } catch (err) {
        throw new OperatorError(
          `cannot reach Temporal at ${connectionOptions.address ?? 'localhost:7233'}: ${(err as Error).message}`,
        );
      }
      // The identity Temporal records with every signal and update this drctl sends (shown in reports).
      const identity = process.env.DRBOOK_IDENTITY || `drctl:${os.userInfo().username}@${os.hostname()}`;
      this.client = new Client({
        connection: this.connection,
        namespace,
        identity,
        dataConverter: dataConverterFromEnv(),
      });
    }
    return this.client;
  }

  /** After each command: close the connection it opened (a client passed in by a test stays). */
  async close(): Promise<void> {
    if (this.connection) await this.connection.close();
    this.connection = undefined;
    if (!this.options.client) this.client = undefined;
  }

  inventory(): Inventory {
    try {
      return loadInventory().inventory;
    } catch (err) {
      if (err instanceof InventoryError) throw new OperatorError(err.message);
      throw err;
    }
  }

  requireService = (name: string): string => {
    const inv = this.inventory();
    if (!inv.services.some((s) => s.name === name))
      throw new OperatorError(
        `unknown service "${name}"; the inventory has: ${inv.services.map((s) => s.name).join(', ')}`,
      );
    return name;
  };

  async handleFor(workflowId: string) {
    const c = await this.temporal();
    const handle = c.workflow.getHandle(workflowId);
    try {
      return { handle, info: await handle.describe() };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new OperatorError(`no run "${workflowId}" (try: drctl runs, or drctl status <service>)`);
      throw err;
    }
  }
}
