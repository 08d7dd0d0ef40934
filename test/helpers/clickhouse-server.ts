/**
 * @module test/helpers/clickhouse-server
 * Starts Debian's clickhouse-server as a child process on loopback with its own config and data dir, for tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Where Debian puts the server binary (`/usr/sbin`); `/usr/bin` is checked too for other layouts. */
const SERVER_BINARIES = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server", "/usr/bin/clickhouse"];
const CONFIG_DIR = "/etc/clickhouse-server";

export interface ClickHouseServerHandle {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly httpPort: number;
  readonly dataDir: string;
  /** pid of the running child, or undefined while stopped. */
  pid(): number | undefined;
  /** SIGKILL the server (simulates a crash); the data dir is kept. */
  kill9(): Promise<void>;
  /** Start again on the same port and data dir (after kill9 or stop). */
  restart(): Promise<void>;
  /** SIGTERM, wait, and remove the scratch dir. */
  stop(): Promise<void>;
}

/** True when the Debian package is installed, so suites can report a clear reason instead of a spawn error. */
export function clickHouseServerBinary(): string | undefined {
  return SERVER_BINARIES.find((p) => existsSync(p));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      srv.close(() => { resolve(port); });
    });
  });
}

/**
 * Debian's config with every path moved into the scratch dir, only the HTTP port (on loopback) kept,
 * and no interserver/TCP/TLS listeners, so parallel test runs never collide.
 */
function rewriteConfig(original: string, dir: string, httpPort: number): string {
  let xml = original.replace(/<!--[\s\S]*?-->/g, "");
  const set = (tag: string, value: string): void => {
    const re = new RegExp(`<${tag}>[^<]*</${tag}>`, "g");
    xml = re.test(xml) ? xml.replace(re, `<${tag}>${value}</${tag}>`) : xml.replace("</yandex>", `    <${tag}>${value}</${tag}>\n</yandex>`);
  };
  const drop = (tag: string): void => {
    xml = xml.replace(new RegExp(`\\s*<${tag}>[\\s\\S]*?</${tag}>`, "g"), "");
  };
  set("log", join(dir, "log", "server.log"));
  set("errorlog", join(dir, "log", "server.err.log"));
  set("level", "warning");
  set("path", `${join(dir, "data")}/`);
  set("tmp_path", `${join(dir, "tmp")}/`);
  set("user_files_path", `${join(dir, "user_files")}/`);
  set("format_schema_path", `${join(dir, "format_schemas")}/`);
  set("http_port", String(httpPort));
  set("users_config", join(dir, "users.xml"));
  for (const tag of ["tcp_port", "https_port", "tcp_port_secure", "interserver_http_port", "query_log", "remote_servers", "graphite_rollup_example", "distributed_ddl"]) drop(tag);
  xml = xml.replace(/\s*<listen_host>[^<]*<\/listen_host>/g, "");
  xml = xml.replace("</yandex>", "    <listen_host>127.0.0.1</listen_host>\n</yandex>");
  return xml;
}

function rewriteUsers(original: string): string {
  // Loopback only: the default user keeps its empty password but accepts nothing but 127.0.0.1.
  return original
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/<networks incl="networks" replace="replace">[\s\S]*?<\/networks>/g,
      '<networks replace="replace"><ip>127.0.0.1</ip></networks>');
}

async function waitForPing(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`clickhouse-server exited early with code ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/ping`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`clickhouse-server did not answer /ping within ${timeoutMs} ms`);
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => { resolve(); }));
}

/** Start a private clickhouse-server on a free loopback port. */
export async function startClickHouseServer(opts: { startTimeoutMs?: number } = {}): Promise<ClickHouseServerHandle> {
  const binary = clickHouseServerBinary();
  if (binary === undefined) {
    throw new Error("clickhouse-server is not installed (apt-get install -y clickhouse-server clickhouse-client)");
  }
  const dir = mkdtempSync(join(tmpdir(), "airlock-ch-"));
  for (const sub of ["log", "data", "tmp", "user_files", "format_schemas"]) mkdirSync(join(dir, sub), { recursive: true });
  const httpPort = await freePort();
  writeFileSync(join(dir, "config.xml"), rewriteConfig(readFileSync(join(CONFIG_DIR, "config.xml"), "utf8"), dir, httpPort));
  writeFileSync(join(dir, "users.xml"), rewriteUsers(readFileSync(join(CONFIG_DIR, "users.xml"), "utf8")));
  const url = `http://127.0.0.1:${httpPort}`;
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = binary.endsWith("/clickhouse") ? ["server", `--config-file=${join(dir, "config.xml")}`] : [`--config-file=${join(dir, "config.xml")}`];
    const c = spawn(binary, args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    c.stderr.on("data", (d: Buffer) => { stderr = (stderr + d.toString("utf8")).slice(-4000); });
    child = c;
    try {
      await waitForPing(url, c, timeoutMs);
    } catch (err) {
      c.kill("SIGKILL");
      await waitForExit(c);
      const log = existsSync(join(dir, "log", "server.err.log")) ? readFileSync(join(dir, "log", "server.err.log"), "utf8").slice(-2000) : "";
      throw new Error(`${(err as Error).message}\n${stderr}\n${log}`);
    }
  };
  await launch();

  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === undefined) return;
    child = undefined;
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, sig);
    await waitForExit(c);
  };

  return {
    url,
    httpPort,
    dataDir: dir,
    pid: () => child?.pid,
    kill9: () => signal("SIGKILL"),
    restart: async () => { await signal("SIGTERM"); await launch(); },
    stop: async () => {
      await signal("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
