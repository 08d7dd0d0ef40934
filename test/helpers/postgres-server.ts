/**
 * @module test/helpers/postgres-server
 * Starts a private PostgreSQL server (initdb + postgres) in a temp dir on a free loopback port for tests; stops it by pid.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/**
 * Running as root: initdb and postgres refuse to run as root, so both are spawned directly with the uid/gid of
 * the `postgres` system user (Node's spawn `uid`/`gid` options, no su/runuser wrapper), which keeps the pid we
 * hold the postmaster's own pid. The temp dir is chowned to that user. As a non-root user they run as ourselves.
 * The server listens on 127.0.0.1 only, its Unix socket lives in the temp dir, and authentication is `trust`
 * (loopback, throwaway data, nothing else can reach it).
 */
export interface PostgresServer {
  readonly port: number;
  /** Superuser connection string for the `postgres` database. */
  readonly connectionString: string;
  /** Creates a fresh database and returns its connection string (isolates test files from each other). */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

const DEFAULT_BIN = "/usr/lib/postgresql/15/bin";
const SUPERUSER = "airlock";

function postgresUserIds(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const fields = line?.split(":");
  const uid = Number(fields?.[2]);
  const gid = Number(fields?.[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error("running as root but no `postgres` user exists to run the test server as");
  }
  return { uid, gid };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

function run(cmd: string, args: readonly string[], ids: { uid: number; gid: number } | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...(ids ?? {}) });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited with ${code}: ${output.slice(-2000)}`));
    });
  });
}

async function waitUntilReady(connectionString: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited early: ${log().slice(-2000)}`);
    const client = new pg.Client({ connectionString });
    client.on("error", () => undefined);
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`postgres did not become ready: ${log().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startPostgresServer(options: { binDir?: string } = {}): Promise<PostgresServer> {
  const bin = options.binDir ?? process.env["AIRLOCK_TEST_PG_BIN"] ?? DEFAULT_BIN;
  const ids = postgresUserIds();
  const dir = mkdtempSync(join(tmpdir(), "airlock-pg-"));
  const dataDir = join(dir, "data");
  if (ids !== null) chownSync(dir, ids.uid, ids.gid);
  let child: ChildProcess | null = null;
  try {
    await run(
      join(bin, "initdb"),
      ["-D", dataDir, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
      ids,
    );
    const port = await freePort();
    let log = "";
    const started = spawn(
      join(bin, "postgres"),
      [
        "-D", dataDir,
        "-p", String(port),
        "-k", dir,
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=100",
      ],
      { stdio: ["ignore", "pipe", "pipe"], ...(ids ?? {}) },
    );
    child = started;
    started.stdout.on("data", (d: Buffer) => (log += d.toString()));
    started.stderr.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-10_000)));
    const connectionString = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
    await waitUntilReady(connectionString, started, () => log);
    const pid = started.pid;
    if (pid === undefined) throw new Error("postgres has no pid");
    return {
      port,
      connectionString,
      async createDatabase(name: string): Promise<string> {
        if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new TypeError(`invalid database name ${name}`);
        const client = new pg.Client({ connectionString });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE ${name}`);
        } finally {
          await client.end();
        }
        return `postgres://${SUPERUSER}@127.0.0.1:${port}/${name}`;
      },
      async stop(): Promise<void> {
        await stopChild(started, pid);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (child?.pid !== undefined) await stopChild(child, child.pid);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** SIGINT is PostgreSQL's "fast shutdown": it ends client sessions and exits cleanly. */
async function stopChild(child: ChildProcess, pid: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => {
    resolve();
  }));
  process.kill(pid, "SIGINT");
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, "SIGKILL");
  }, 10_000);
  await exited;
  clearTimeout(timer);
}
