/**
 * @module tap/audit/audit-sink
 * The spooling audit sink: merges decisions with exchanges, chains rows, appends to the spool, delivers in batches.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { Counter, Gauge, type Registry } from "prom-client";
import { parseAuditConfig, type AuditConfig, type AuditConfigInput } from "./audit-config.js";
import { AuditError, describeError } from "./audit-errors.js";
import type {
  AdmissionVerdict, ApprovalEvent, AuditSink, AuditSinkMetrics, DecisionEvent, ExchangeEvent,
} from "./audit-event.js";
import {
  buildApprovalRow, buildRequestRow, type ApprovalRowBody, type AuditTable, type RequestRowBody, type RowLimits,
} from "./audit-row.js";
import { AuditSpool, comparePositions, writeFileAtomicSync, type SpoolBatch, type SpoolPosition } from "./audit-spool.js";
import type { AuditStore } from "./audit-store.js";
import { openAuditStore } from "./open-audit-store.js";
import { chainHash, GENESIS_HASH, hashTail } from "./hash-chain.js";
import { applyMigrations, findSchemaDir } from "./schema-migrations.js";

/** The subset of a pino logger the sink uses. */
export interface AuditLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface AuditSinkDeps {
  readonly logger?: AuditLogger;
  readonly metricsRegistry?: Registry;
  /** Use this store instead of the one the config names (tests, embedding); the sink closes it on close(). */
  readonly store?: AuditStore;
  /** Skip migrations (the schema is managed elsewhere, or a legacy test table is already in place). */
  readonly skipMigrations?: boolean;
}

/** The sink plus what an operator or a test may want to know about it. */
export interface SpoolingAuditSink extends AuditSink {
  readonly gatewayInstance: string;
  readonly chainId: string;
  readonly store: AuditStore;
  /** Waits up to flushTimeoutMs (default 5 s) for delivery; what is left stays in the spool for the next start. */
  close(opts?: { flushTimeoutMs?: number }): Promise<void>;
}

interface HeldDecision {
  readonly event: DecisionEvent;
  readonly segment: number;
  readonly expiresAtMs: number;
}

interface ChainHead {
  seq: number;
  hash: string;
}

const silentLogger: AuditLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Open the spool, recover what a previous run left, connect the store, and start background delivery. */
export async function openAuditSink(config: AuditConfig | AuditConfigInput, deps: AuditSinkDeps = {}): Promise<SpoolingAuditSink> {
  const cfg = parseAuditConfig(config);
  const store = deps.store ?? await openAuditStore(cfg);
  try {
    const migrate = deps.skipMigrations !== true && (cfg.store.kind === "embedded" || cfg.store.applyMigrations);
    const sink = new Sink(cfg, store, deps.logger ?? silentLogger, migrate);
    if (deps.metricsRegistry !== undefined) sink.registerMetrics(deps.metricsRegistry);
    sink.start();
    return sink;
  } catch (err) {
    if (deps.store === undefined) await store.close();
    throw err;
  }
}

class Sink implements SpoolingAuditSink {
  readonly gatewayInstance: string;
  readonly chainId: string;
  readonly store: AuditStore;
  private readonly cfg: AuditConfig;
  private readonly logger: AuditLogger;
  private readonly limits: RowLimits;
  private readonly spool: AuditSpool;
  private readonly migrate: boolean;
  private head: ChainHead = { seq: 0, hash: GENESIS_HASH };
  private readonly held = new Map<string, HeldDecision>();
  private readonly heldByRequest = new Map<string, string>();
  private spoolError: string | undefined;
  private appended = 0;
  /** Rows the store has confirmed. */
  private committed = 0;
  /** Rows the store has confirmed AND the cursor on disk has moved past (what flush() waits for). */
  private persisted = 0;
  private delivered = 0;
  private failures = 0;
  private corrupt = 0;
  private lastError: string | undefined;
  private readonly lagMarks: { count: number; atMs: number }[] = [];
  private schema: Promise<void> | undefined;
  private stopping = false;
  private aborted = false;
  private loop: Promise<void> | undefined;
  /** Sleepers woken by new rows, flush and close (the loop waiting for work). */
  private readonly workWakers = new Set<() => void>();
  /** Sleepers woken only by close (retry backoff: new rows must not shorten it). */
  private readonly abortWakers = new Set<() => void>();
  /** Rows of the batches taken out of the queue for delivery (sent or about to be), not yet confirmed. */
  private inDelivery = 0;
  private readonly flushWaiters: { target: number; resolve: () => void }[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private failureCounter: Counter | undefined;
  private deliveredCounter: Counter | undefined;

  constructor(cfg: AuditConfig, store: AuditStore, logger: AuditLogger, migrate: boolean) {
    this.cfg = cfg;
    this.store = store;
    this.logger = logger;
    this.migrate = migrate;
    this.gatewayInstance = cfg.gatewayInstance ?? hostname();
    this.limits = { requestBodyMaxBytes: cfg.requestBodyMaxBytes, responseBodyMaxBytes: cfg.responseBodyMaxBytes };
    this.spool = AuditSpool.open({
      dir: cfg.spoolDir,
      fsync: cfg.fsync,
      fsyncIntervalMs: cfg.fsyncIntervalMs,
      segmentMaxBytes: cfg.segmentMaxBytes,
      readCacheMaxBytes: cfg.spoolReadCacheMaxBytes,
      segmentHeader: () => JSON.stringify({ chain_id: this.chainId, seq: this.head.seq, hash: this.head.hash }),
    });
    this.chainId = this.loadChainId();
    this.recover();
  }

  /** One chain per spool directory: the id is created with the spool and lives as long as it does. */
  private loadChainId(): string {
    const file = join(this.spool.dir, "chain-id");
    if (existsSync(file)) {
      const id = readFileSync(file, "utf8").trim();
      if (/^[A-Za-z0-9-]{8,64}$/.test(id)) return id;
    }
    const id = randomUUID();
    writeFileAtomicSync(file, id);
    return id;
  }

  /**
   * Rebuild state from what the spool holds: the chain head, the number of undelivered rows, and allowed
   * decisions whose exchange never came (the process died with them held: written now as 'missing').
   */
  private recover(): void {
    const from = { segment: this.spool.oldestSegment, offset: 0 };
    const deliverFrom = this.spool.inflight?.from ?? this.spool.cursor;
    const pendingDecisions = new Map<string, DecisionEvent>();
    let lastRow: (() => string) | undefined;
    let pending = 0;
    this.corrupt += this.spool.scanSync(from, (kind, payload, at) => {
      switch (kind) {
        case "C": {
          const c = JSON.parse(payload()) as { seq: number; hash: string };
          if (c.seq >= this.head.seq) this.head = { seq: c.seq, hash: c.hash };
          break;
        }
        case "D": {
          const d = JSON.parse(payload()) as DecisionEvent;
          pendingDecisions.set(d.decisionId, d);
          break;
        }
        case "R":
        case "A": {
          lastRow = payload;
          if (comparePositions(at, deliverFrom) >= 0) pending++;
          if (kind === "R" && pendingDecisions.size > 0) {
            const m = /"decision_id":"((?:[^"\\]|\\.)*)"/.exec(payload());
            if (m?.[1] !== undefined) pendingDecisions.delete(JSON.parse(`"${m[1]}"`) as string);
          }
          break;
        }
      }
    });
    if (lastRow !== undefined) {
      const r = JSON.parse(lastRow()) as { chain_seq: number; hash: string };
      if (r.chain_seq >= this.head.seq) this.head = { seq: r.chain_seq, hash: r.hash };
    }
    this.appended = pending;
    if (pending > 0) this.lagMarks.push({ count: pending, atMs: Date.now() });
    for (const d of pendingDecisions.values()) {
      this.appendRow("requests", {
        ...buildRequestRow(d, undefined, this.limits, Date.now() * 1000),
        reason: [d.reason, "gateway restarted before the response was recorded"].filter((x) => x !== "").join("; "),
      });
    }
    if (pending > 0 || pendingDecisions.size > 0) {
      this.logger.info({ pendingRows: this.appended, missing: pendingDecisions.size, spoolBytes: this.spool.bytes }, "audit spool recovered");
    }
  }

  start(): void {
    this.ensureSchema().catch((err: unknown) => {
      this.logger.warn({ err: describeError(err) }, "audit schema migration failed; retrying with the first batch");
    });
    this.loop = this.deliveryLoop();
    const sweepMs = Math.max(10, Math.min(1000, Math.floor(this.cfg.exchangeTimeoutMs / 2)));
    this.sweepTimer = setInterval(() => { this.sweep(); }, sweepMs);
    this.sweepTimer.unref();
  }

  registerMetrics(registry: Registry): void {
    const metrics = (): AuditSinkMetrics => this.metrics();
    new Gauge({ name: "airlock_audit_queue_depth", help: "Audit rows appended to the spool and not yet in the store.", registers: [registry],
      collect() { this.set(metrics().queueDepth); } });
    new Gauge({ name: "airlock_audit_spool_bytes", help: "Bytes of audit spool segments on disk.", registers: [registry],
      collect() { this.set(metrics().spoolBytes); } });
    new Gauge({ name: "airlock_audit_insert_lag_seconds", help: "Age of the oldest audit row not yet in the store.", registers: [registry],
      collect() { this.set(metrics().insertLagMs / 1000); } });
    new Gauge({ name: "airlock_audit_held_decisions", help: "Allowed decisions waiting for their exchange.", registers: [registry],
      collect() { this.set(metrics().heldDecisions); } });
    this.failureCounter = new Counter({ name: "airlock_audit_insert_failures_total", help: "Failed audit insert attempts (each is retried).", registers: [registry] });
    this.deliveredCounter = new Counter({ name: "airlock_audit_rows_delivered_total", help: "Audit rows confirmed by the store.", registers: [registry] });
  }

  // ---- request path: synchronous, append-only ------------------------------------------------------------

  recordDecision(event: DecisionEvent): void {
    if (event.effect !== "Allow" || event.noExchange !== undefined) {
      this.appendRow("requests", buildRequestRow(event, undefined, this.limits, Date.now() * 1000));
      return;
    }
    if (this.held.size >= this.cfg.maxHeldDecisions) {
      const oldest = this.held.keys().next().value;
      if (oldest !== undefined) this.release(oldest, "hold capacity exceeded before the response was recorded");
    }
    // Spooled too, so a crash while the request is in flight still leaves a row (written as 'missing').
    let segment: number;
    try {
      segment = this.spool.append("D", JSON.stringify(event));
    } catch (err) {
      this.noteSpoolFailure(err);
      // Without a spooled copy the hold is not crash-safe: write the row now, marked as missing its response.
      this.appendRow("requests", buildRequestRow(event, undefined, this.limits, Date.now() * 1000));
      return;
    }
    this.held.set(event.decisionId, { event, segment, expiresAtMs: Date.now() + this.cfg.exchangeTimeoutMs });
    if (event.requestId !== "") this.heldByRequest.set(event.requestId, event.decisionId);
  }

  recordExchange(event: ExchangeEvent): void {
    const decisionId = this.held.has(event.decisionId) ? event.decisionId : this.heldByRequest.get(event.requestId);
    const held = decisionId === undefined ? undefined : this.held.get(decisionId);
    if (decisionId !== undefined && held !== undefined) this.forget(decisionId, held);
    // No held decision: another replica decided, or the hold already expired. The row still records it.
    this.appendRow("requests", buildRequestRow(held?.event, event, this.limits, Date.now() * 1000));
  }

  recordApproval(event: ApprovalEvent): void {
    this.appendRow("approvals", buildApprovalRow(event));
  }

  canAccept(): AdmissionVerdict {
    if (this.stopping) return { ok: false, reason: "audit sink is shutting down" };
    const failure = this.spool.failure ?? this.spoolError;
    if (failure !== undefined) {
      return { ok: false, reason: `audit spool cannot be written (${failure}); refusing unrecorded access` };
    }
    if (this.cfg.onBudgetExceeded === "deny" && this.spool.bytes > this.cfg.diskBudgetBytes) {
      return { ok: false, reason: `audit spool is over its disk budget (${this.spool.bytes} > ${this.cfg.diskBudgetBytes} bytes); refusing unrecorded access` };
    }
    return { ok: true };
  }

  private forget(decisionId: string, held: HeldDecision): void {
    this.held.delete(decisionId);
    if (this.heldByRequest.get(held.event.requestId) === decisionId) this.heldByRequest.delete(held.event.requestId);
  }

  private release(decisionId: string, why: string): void {
    const held = this.held.get(decisionId);
    if (held === undefined) return;
    this.forget(decisionId, held);
    const row = buildRequestRow(held.event, undefined, this.limits, Date.now() * 1000);
    this.appendRow("requests", { ...row, reason: [row.reason, why].filter((x) => x !== "").join("; ") });
  }

  private sweep(): void {
    const now = Date.now();
    // Map order is insertion order, and every hold has the same timeout: stop at the first live one.
    for (const [id, held] of this.held) {
      if (held.expiresAtMs > now) break;
      this.release(id, "no response recorded before the exchange timeout");
    }
    if (this.spool.failure !== undefined && this.spool.flushPending()) {
      this.logger.info({}, "audit spool writable again");
      this.spoolError = undefined;
    }
  }

  private appendRow(table: AuditTable, body: RequestRowBody | ApprovalRowBody): void {
    try {
      this.writeRow(table, body);
    } catch (err) {
      // Only when the disk has refused writes long enough to fill the in-memory allowance.
      this.noteSpoolFailure(err);
      this.logger.error({ table, err: describeError(err) }, "audit row could not be recorded");
    }
  }

  /**
   * Chain and append. The body's keys are already in column order (buildRequestRow/buildApprovalRow build
   * them so), so the chain columns are added in place and the object serialised once as the canonical row.
   */
  private writeRow(table: AuditTable, body: RequestRowBody | ApprovalRowBody): void {
    const seq = this.head.seq + 1;
    const row = body as unknown as Record<string, unknown>;
    row["gateway_instance"] = this.gatewayInstance;
    row["chain_id"] = this.chainId;
    row["chain_seq"] = seq;
    row["prev_hash"] = this.head.hash;
    const canonical = JSON.stringify(row);
    const hash = chainHash(this.head.hash, table, canonical);
    // The JSONEachRow line is rowLine(canonical, hash); handed over in two parts so the spool encodes the
    // canonical text where it lies instead of first copying it into one more string.
    this.spool.append(table === "requests" ? "R" : "A", canonical.slice(0, -1), hashTail(hash));
    this.head = { seq, hash };
    this.appended++;
    // One mark per second of appends: the lag metric needs no finer grain, and a long outage stays small.
    const now = Date.now();
    const lastMark = this.lagMarks.at(-1);
    if (lastMark !== undefined && now - lastMark.atMs < 1_000) lastMark.count = this.appended;
    else this.lagMarks.push({ count: this.appended, atMs: now });
    if (this.workWakers.size > 0) {
      const waiting = this.waiting;
      if (waiting === 1 || waiting === this.cfg.batchMaxRows) this.wakeForWork();
    }
  }

  private noteSpoolFailure(err: unknown): void {
    const message = describeError(err);
    if (this.spoolError === undefined) this.logger.error({ err: message }, "audit spool write failed; denying new requests");
    this.spoolError = message;
  }

  // ---- delivery: background, batched, retried ---------------------------------------------------------------

  private isAborted(): boolean {
    return this.aborted;
  }

  /** Rows appended and not yet confirmed by the store. */
  private get pending(): number {
    return this.appended - this.committed;
  }

  /** Pending rows not yet taken into a batch. */
  private get waiting(): number {
    return this.appended - this.committed - this.inDelivery;
  }

  /**
   * Whether the next batch should be cut now: a full one is waiting, or the oldest waiting row has waited
   * batchMaxDelayMs, or someone is flushing or closing. Otherwise rows keep collecting so each insert makes
   * one decent part.
   */
  private batchDue(now: number): boolean {
    const waiting = this.waiting;
    if (waiting >= this.cfg.batchMaxRows) return true;
    if (waiting <= 0) return false;
    if (this.stopping || this.flushWaiters.length > 0) return true;
    return (this.oldestWaitingAtMs() ?? now) + this.cfg.batchMaxDelayMs <= now;
  }

  private async waitForWork(): Promise<void> {
    for (;;) {
      if (this.aborted || this.stopping || this.flushWaiters.length > 0) return;
      const now = Date.now();
      if (this.batchDue(now)) return;
      const oldest = this.waiting > 0 ? this.oldestWaitingAtMs() ?? now : undefined;
      await this.sleep(oldest === undefined ? undefined : oldest + this.cfg.batchMaxDelayMs - now);
    }
  }

  /** Sleep until woken (new work, flush, close; only close when `untilAbort`) or for ms. */
  private sleep(ms: number | undefined, untilAbort = false): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        this.workWakers.delete(done);
        this.abortWakers.delete(done);
        resolve();
      };
      if (ms !== undefined) timer = setTimeout(done, Math.max(0, ms));
      (untilAbort ? this.abortWakers : this.workWakers).add(done);
    });
  }

  private wakeForWork(): void {
    for (const wake of [...this.workWakers]) wake();
  }

  private wakeAll(): void {
    this.wakeForWork();
    for (const wake of [...this.abortWakers]) wake();
  }

  /**
   * Batches go in spool order, one insert at a time, and every batch is on disk in the cursor (in flight or
   * queued right behind it) before it is sent, so a restart re-sends exactly the batches that may have
   * reached the store, under the same tokens. While a batch is being inserted, the next one is cut as soon
   * as it is due and written to the cursor as queued; it then goes the moment the first is confirmed, so the
   * store does not sit idle through a cursor write between inserts. The cursor write that puts a batch in
   * flight also commits everything before it.
   */
  private async deliveryLoop(): Promise<void> {
    let next = this.spool.cursor;
    // Re-send what the last run had in flight, and what it had queued behind that, each under its own token.
    let replayed: SpoolPosition | undefined;
    for (const b of [this.spool.inflight, this.spool.queued]) {
      if (b === undefined) continue;
      const batch = outgoing(await this.spool.readBatch(b.from, b.to, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
      if (!await this.deliverAndCount(batch)) return;
      next = b.to;
      replayed = b.to;
    }
    if (replayed !== undefined) await this.persistDelivered(replayed, this.committed);
    /** Confirmed, but the cursor on disk is still before it (and how many rows that covers). */
    let unpersisted: { to: SpoolPosition; rows: number } | undefined;
    /** Cut and already in the cursor as queued: it may be sent without another cursor write. */
    let ready: OutgoingBatch | undefined;
    while (!this.aborted) {
      let batch = ready;
      ready = undefined;
      if (batch === undefined) {
        if (unpersisted !== undefined && !this.batchDue(Date.now())) {
          await this.persistDelivered(unpersisted.to, unpersisted.rows);
          unpersisted = undefined;
        }
        await this.waitForWork();
        // close() may have aborted while we waited (the loop condition was checked before).
        if (this.isAborted()) break;
        this.spool.flushPending();
        const end = this.spool.end;
        if (this.pending === 0 && comparePositions(next, end) >= 0) {
          this.resolveFlushWaiters();
          if (this.stopping) break;
          continue;
        }
        batch = outgoing(await this.spool.readBatch(next, end, this.cfg.batchMaxRows, this.cfg.batchMaxBytes));
        if (comparePositions(batch.to, batch.from) === 0) {
          if (unpersisted !== undefined) {
            await this.persistDelivered(unpersisted.to, unpersisted.rows);
            unpersisted = undefined;
          }
          this.resolveFlushWaiters();
          if (this.stopping) break;
          await this.sleep(this.cfg.batchMaxDelayMs);
          continue;
        }
        if (rowsOf(batch) > 0) {
          await this.spool.markInflight(batch);
          if (unpersisted !== undefined) this.afterPersisted(unpersisted.to, unpersisted.rows);
          unpersisted = undefined;
        }
      }
      this.inDelivery = rowsOf(batch);
      const delivering = this.deliverAndCount(batch);
      ready = await this.queueBehind(batch, delivering);
      if (ready !== undefined && unpersisted !== undefined) {
        // Writing the queue put `batch` in flight, which committed everything before it.
        this.afterPersisted(unpersisted.to, unpersisted.rows);
        unpersisted = undefined;
      }
      // Aborted before the store confirmed it: the cursor on disk keeps this batch (and any queued one) for
      // the next start; nothing may be committed past it now.
      if (!await delivering) return;
      next = batch.to;
      unpersisted = { to: batch.to, rows: this.committed };
    }
    if (unpersisted !== undefined) await this.persistDelivered(unpersisted.to, unpersisted.rows);
  }

  /**
   * While `current` is being delivered, wait for the next batch to become due; cut it, write it to the
   * cursor as queued behind `current`, and return it. Undefined when `current` was settled first.
   */
  private async queueBehind(current: OutgoingBatch, delivering: Promise<boolean>): Promise<OutgoingBatch | undefined> {
    if (rowsOf(current) === 0) return undefined;
    // An object, not a let: the callback sets it and the loop below must see the change.
    const state = { settled: false };
    const settle = (): void => {
      state.settled = true;
      this.wakeForWork();
    };
    delivering.then(settle, settle);
    for (;;) {
      if (state.settled || this.isAborted()) return undefined;
      const now = Date.now();
      if (this.batchDue(now)) break;
      const oldest = this.waiting > 0 ? this.oldestWaitingAtMs() ?? now : undefined;
      await this.sleep(oldest === undefined ? undefined : oldest + this.cfg.batchMaxDelayMs - now);
    }
    this.spool.flushPending();
    const queued = outgoing(await this.spool.readBatch(current.to, this.spool.end, this.cfg.batchMaxRows, this.cfg.batchMaxBytes));
    // Nothing to insert (or only held decisions): the loop takes it up the ordinary way.
    if (rowsOf(queued) === 0 || this.isAborted()) return undefined;
    await this.spool.markInflight(current, queued);
    this.inDelivery += rowsOf(queued);
    return queued;
  }

  /** Deliver and account; false when aborted first (the batch stays in flight for the next start). */
  private async deliverAndCount(batch: OutgoingBatch): Promise<boolean> {
    this.corrupt += batch.corruptRecords;
    if (!await this.deliver(batch)) return false;
    const rows = rowsOf(batch);
    this.committed += rows;
    this.inDelivery = Math.max(0, this.inDelivery - rows);
    this.delivered += rows;
    this.deliveredCounter?.inc(rows);
    let drop = 0;
    while (drop < this.lagMarks.length && (this.lagMarks[drop]?.count ?? 0) <= this.committed) drop++;
    if (drop > 0) this.lagMarks.splice(0, drop);
    return true;
  }

  /** Commit on its own (no batch is due): here there is time to wait for delivered segments to go. */
  private async persistDelivered(to: SpoolPosition, rows: number): Promise<void> {
    await this.spool.commit(to);
    await this.deleteDelivered(to);
    this.markPersisted(rows);
  }

  /**
   * The cursor on disk is at or past `to`. Segments before it go in the background (an insert is about to
   * start; persistDelivered waits for them).
   */
  private afterPersisted(to: SpoolPosition, rows: number): void {
    void this.deleteDelivered(to);
    this.markPersisted(rows);
  }

  /** The cursor on disk covers the first `rows` rows: flushes waiting for them are done. */
  private markPersisted(rows: number): void {
    this.persisted = Math.max(this.persisted, rows);
    this.resolveFlushWaiters();
  }

  /** Segments wholly before `to` and before every held decision's D record. */
  private deleteDelivered(to: SpoolPosition): Promise<void> {
    const firstHeld = this.held.values().next().value;
    return this.spool.deleteSegmentsBelow(Math.min(to.segment, firstHeld?.segment ?? Number.MAX_SAFE_INTEGER));
  }

  /** Insert with retries and backoff; false only when the sink is aborted (close) before it succeeded. */
  private async deliver(batch: OutgoingBatch): Promise<boolean> {
    if (batch.rows === 0) return true;
    const token = `${this.chainId}:${batch.from.segment}.${batch.from.offset}-${batch.to.segment}.${batch.to.offset}`;
    let delay = this.cfg.retryInitialDelayMs;
    while (!this.aborted) {
      try {
        await this.ensureSchema();
        if (batch.requests !== undefined) {
          await this.store.insertJsonEachRow("requests", batch.requests, `${token}:requests`);
        }
        if (batch.approvals !== undefined) {
          await this.store.insertJsonEachRow("approvals", batch.approvals, `${token}:approvals`);
        }
        if (this.lastError !== undefined) this.logger.info({ rows: batch.rows }, "audit delivery recovered");
        this.lastError = undefined;
        return true;
      } catch (err) {
        this.failures++;
        this.failureCounter?.inc();
        const message = describeError(err);
        if (this.lastError === undefined) this.logger.warn({ err: message, retryInMs: delay }, "audit insert failed; retrying");
        this.lastError = message;
        // Full jitter keeps replicas from retrying in lockstep against a recovering server.
        await this.sleep(Math.floor(delay / 2 + Math.random() * delay / 2), true);
        delay = Math.min(delay * 2, this.cfg.retryMaxDelayMs);
      }
    }
    return false;
  }

  /**
   * Migrations run once per sink: started at open so the tables exist before anyone replays, and awaited
   * again before every insert until they succeed (a store that is down at start is retried with the rows).
   */
  private ensureSchema(): Promise<void> {
    if (!this.migrate) return Promise.resolve();
    this.schema ??= applyMigrations(this.store, {
      dir: join(findSchemaDir(this.cfg.schemaDir), "migrations"),
      retentionDays: this.cfg.retentionDays,
    }).then(() => undefined, (err: unknown) => {
      this.schema = undefined;
      throw err;
    });
    return this.schema;
  }

  private oldestPendingAtMs(): number | undefined {
    if (this.pending <= 0) return undefined;
    for (const mark of this.lagMarks) if (mark.count > this.committed) return mark.atMs;
    return undefined;
  }

  /** When the oldest row not yet taken into a batch was appended (to the second; see writeRow). */
  private oldestWaitingAtMs(): number | undefined {
    if (this.waiting <= 0) return undefined;
    const taken = this.committed + this.inDelivery;
    for (const mark of this.lagMarks) if (mark.count > taken) return mark.atMs;
    return undefined;
  }

  private resolveFlushWaiters(): void {
    for (let i = this.flushWaiters.length - 1; i >= 0; i--) {
      const waiter = this.flushWaiters[i];
      if (waiter !== undefined && this.persisted >= waiter.target) {
        this.flushWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  flush(): Promise<void> {
    if (this.persisted >= this.appended) return Promise.resolve();
    return new Promise((resolve) => {
      this.flushWaiters.push({ target: this.appended, resolve });
      this.wakeForWork();
    });
  }

  close(opts: { flushTimeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(opts.flushTimeoutMs ?? 5_000);
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
    ]);
    if (timer !== undefined) clearTimeout(timer);
    // Held decisions stay in the spool as D records: the next start writes them as 'missing'.
    this.aborted = true;
    this.wakeAll();
    const loop = this.loop;
    this.loop = undefined;
    // An insert already on the wire may take up to the request timeout; closing the store below cuts it
    // (the batch stays in flight in the spool and is re-sent with the same token at the next start).
    let loopTimer: NodeJS.Timeout | undefined;
    await Promise.race([loop, new Promise<void>((resolve) => { loopTimer = setTimeout(resolve, 2_000); })]);
    if (loopTimer !== undefined) clearTimeout(loopTimer);
    for (const w of this.flushWaiters.splice(0)) w.resolve();
    // Let a migration still running from start finish before its connection goes away (bounded).
    let schemaTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.schema?.catch(() => undefined),
      new Promise<void>((resolve) => { schemaTimer = setTimeout(resolve, 2_000); }),
    ]);
    if (schemaTimer !== undefined) clearTimeout(schemaTimer);
    this.spool.close();
    await this.store.close();
  }

  metrics(): AuditSinkMetrics {
    const oldest = this.oldestPendingAtMs();
    return {
      queueDepth: this.pending,
      spoolBytes: this.spool.bytes,
      insertLagMs: oldest === undefined ? 0 : Math.max(0, Date.now() - oldest),
      insertFailures: this.failures,
      rowsDelivered: this.delivered,
      heldDecisions: this.held.size,
      lastError: this.lastError ?? this.spool.failure ?? this.spoolError,
    };
  }
}

/** A batch ready to send: each table's lines as one JSONEachRow payload. */
interface OutgoingBatch {
  readonly from: SpoolPosition;
  readonly to: SpoolPosition;
  readonly rows: number;
  readonly requests: Buffer | undefined;
  readonly approvals: Buffer | undefined;
  readonly corruptRecords: number;
}

/**
 * Join the lines once, right after the read: the per-line views then die young instead of living through
 * the insert (and its retries), which would promote tens of thousands of small objects per batch into the
 * old generation for the garbage collector to sweep.
 */
function outgoing(batch: SpoolBatch): OutgoingBatch {
  return {
    from: batch.from,
    to: batch.to,
    rows: batch.requests.length + batch.approvals.length,
    requests: batch.requests.length > 0 ? Buffer.concat(batch.requests) : undefined,
    approvals: batch.approvals.length > 0 ? Buffer.concat(batch.approvals) : undefined,
    corruptRecords: batch.corruptRecords,
  };
}

function rowsOf(batch: OutgoingBatch): number {
  return batch.rows;
}

export { AuditError };
