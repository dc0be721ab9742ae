/**
 * The session cycle done directly on PostgreSQL by a competent hand-written client that
 * locks for itself: the bar the PostgreSQL driver is measured against (bench/session-cycle.ts).
 * One connection per client, prepared statements, 4 round trips and one durable commit per
 * cycle: `BEGIN; SELECT … FOR UPDATE; UPDATE …; COMMIT`.
 */
import pg from 'pg';
import type { CycleClient } from './session-cycle.js';

const LOCK_AND_READ = 'SELECT data FROM %TABLE% WHERE id = $1 FOR UPDATE';
const WRITE = "UPDATE %TABLE% SET data = $2, expires_at = now() + interval '1440 seconds' WHERE id = $1";

/** Creates the direct clients' table in `schema` (dropped with the schema). */
export async function createDirectTable(client: pg.Client, schema: string): Promise<string> {
  const table = `"${schema}"."direct_sessions"`;
  await client.query(`CREATE TABLE ${table} (id text PRIMARY KEY, data text NOT NULL, expires_at timestamptz NOT NULL)`);
  return table;
}

export class DirectPostgresClient implements CycleClient {
  private readonly lockAndRead: pg.QueryConfig;
  private readonly write: pg.QueryConfig;

  private constructor(
    private readonly client: pg.Client,
    table: string,
    private readonly id: string,
    private readonly value: string,
  ) {
    this.lockAndRead = { name: 'direct-lock-read', text: LOCK_AND_READ.replace('%TABLE%', table), values: [id] };
    this.write = { name: 'direct-write', text: WRITE.replace('%TABLE%', table), values: [id, JSON.stringify({ k: value })] };
  }

  static async connect(url: string, table: string, id: string, value: string): Promise<DirectPostgresClient> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`INSERT INTO ${table} (id, data, expires_at) VALUES ($1, '{}', now()) ON CONFLICT (id) DO NOTHING`, [id]);
    return new DirectPostgresClient(client, table, id, value);
  }

  async cycle(): Promise<void> {
    await this.client.query('BEGIN');
    try {
      const { rows } = await this.client.query<{ data: string }>(this.lockAndRead);
      const session = JSON.parse(rows[0]!.data) as { k?: string };
      if (session.k !== undefined && session.k !== this.value) throw new Error('read another value');
      await this.client.query(this.write);
      await this.client.query('COMMIT');
    } catch (error) {
      await this.client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => {});
  }
}
