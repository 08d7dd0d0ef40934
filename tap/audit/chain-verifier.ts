/**
 * @module tap/audit/chain-verifier
 * Reads chained rows back from the store and verifies them page by page (whole chains, a window, a session).
 */
import { APPROVAL_COLUMNS, REQUEST_COLUMNS, type AuditTable } from "./audit-row.js";
import type { AuditStore } from "./audit-store.js";
import { verifyChainSegment, type ChainBreak, type ChainedRow } from "./hash-chain.js";

export interface VerifyOptions {
  /** Only rows at or after this time (µs since the epoch); the first row in the window anchors the check. */
  readonly sinceMicros?: number;
  /** Only the stretch of each chain that holds this session's rows (plus one neighbour either side). */
  readonly sessionId?: string;
  readonly pageSize?: number;
}

export interface ChainReport {
  readonly gatewayInstance: string;
  readonly chainId: string;
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly rowsChecked: number;
  /** The chain's retained start is not position 1 (TTL, or rows deleted from the start). */
  readonly startsAfterGenesis: boolean;
}

export interface VerifyReport {
  readonly chains: readonly ChainReport[];
  readonly rowsChecked: number;
  readonly firstBreak: ChainBreak | undefined;
}

interface ChainRange {
  gateway_instance: string;
  chain_id: string;
  lo: number | string;
  hi: number | string;
}

function selectList(table: AuditTable): string {
  return [...(table === "requests" ? REQUEST_COLUMNS : APPROVAL_COLUMNS), "hash"].join(", ");
}

/** Chains present in the selection and the seq range the selection covers in each. */
async function chainRanges(store: AuditStore, opts: VerifyOptions): Promise<ChainRange[]> {
  const db = store.database;
  const params: Record<string, string | number> = {};
  let requestsWhere = "1";
  let approvalsWhere = "1";
  if (opts.sinceMicros !== undefined) {
    params["since"] = opts.sinceMicros;
    requestsWhere += " AND time_us >= {since:UInt64}";
    approvalsWhere += " AND time_us >= {since:UInt64}";
  }
  if (opts.sessionId !== undefined) {
    params["session"] = opts.sessionId;
    requestsWhere += " AND session_id = {session:String}";
    approvalsWhere += " AND requester_session_id = {session:String}";
  }
  return store.queryRows<ChainRange>(
    `SELECT gateway_instance, chain_id, min(chain_seq) AS lo, max(chain_seq) AS hi FROM (
       SELECT gateway_instance, chain_id, chain_seq FROM ${db}.requests WHERE ${requestsWhere}
       UNION ALL
       SELECT gateway_instance, chain_id, chain_seq FROM ${db}.approvals WHERE ${approvalsWhere}
     ) GROUP BY gateway_instance, chain_id ORDER BY gateway_instance, chain_id`,
    params,
  );
}

/** Nearest existing position below / above `seq` in a chain (either table), if any. */
async function neighbour(store: AuditStore, instance: string, chainId: string, seq: number, dir: "below" | "above"): Promise<number | undefined> {
  const db = store.database;
  const agg = dir === "below" ? "max" : "min";
  const cmp = dir === "below" ? "<" : ">";
  const rows = await store.queryRows<{ n: number | string; s: number | string }>(
    `SELECT count() AS n, ${agg}(chain_seq) AS s FROM (
       SELECT chain_seq FROM ${db}.requests WHERE gateway_instance = {gi:String} AND chain_id = {ci:String} AND chain_seq ${cmp} {seq:UInt64}
       UNION ALL
       SELECT chain_seq FROM ${db}.approvals WHERE gateway_instance = {gi:String} AND chain_id = {ci:String} AND chain_seq ${cmp} {seq:UInt64}
     )`,
    { gi: instance, ci: chainId, seq },
  );
  const r = rows[0];
  return r === undefined || Number(r.n) === 0 ? undefined : Number(r.s);
}

async function page(store: AuditStore, instance: string, chainId: string, lo: number, hi: number): Promise<ChainedRow[]> {
  const db = store.database;
  const params = { gi: instance, ci: chainId, lo, hi };
  const where = "gateway_instance = {gi:String} AND chain_id = {ci:String} AND chain_seq >= {lo:UInt64} AND chain_seq <= {hi:UInt64}";
  const [requests, approvals] = await Promise.all([
    store.queryRows<Record<string, unknown>>(`SELECT ${selectList("requests")} FROM ${db}.requests WHERE ${where} ORDER BY chain_seq`, params),
    store.queryRows<Record<string, unknown>>(`SELECT ${selectList("approvals")} FROM ${db}.approvals WHERE ${where} ORDER BY chain_seq`, params),
  ]);
  const rows: ChainedRow[] = [
    ...requests.map((row) => ({ table: "requests" as const, row })),
    ...approvals.map((row) => ({ table: "approvals" as const, row })),
  ];
  return rows.sort((a, b) => Number(a.row["chain_seq"]) - Number(b.row["chain_seq"]));
}

/**
 * Verify every chain the selection touches and stop at the first broken link. Deleting or editing any row
 * inside a verified stretch is reported; rows removed from the very end of a chain cannot be told from
 * rows never written (compare with the sink's spool or an external copy of the last hash for that).
 */
export async function verifyAuditChains(store: AuditStore, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const pageSize = opts.pageSize ?? 20_000;
  const chains: ChainReport[] = [];
  let total = 0;
  for (const range of await chainRanges(store, opts)) {
    let lo = Number(range.lo);
    let hi = Number(range.hi);
    if (opts.sinceMicros !== undefined && opts.sessionId === undefined) {
      // Link the window's first row to its predecessor, so deleting it is not mistaken for the window start.
      lo = await neighbour(store, range.gateway_instance, range.chain_id, lo, "below") ?? lo;
    }
    if (opts.sessionId !== undefined) {
      // Widen to the neighbours, so a deleted first or last row of the session shows up as a gap.
      lo = await neighbour(store, range.gateway_instance, range.chain_id, lo, "below") ?? lo;
      hi = await neighbour(store, range.gateway_instance, range.chain_id, hi, "above") ?? hi;
    }
    let anchor: { seq: number; hash: string } | undefined;
    let checked = 0;
    for (let from = lo; from <= hi; from += pageSize) {
      const rows = await page(store, range.gateway_instance, range.chain_id, from, Math.min(hi, from + pageSize - 1));
      const result = verifyChainSegment(rows, anchor);
      checked += result.rowsChecked;
      if (result.firstBreak !== undefined) {
        chains.push({ gatewayInstance: range.gateway_instance, chainId: range.chain_id, fromSeq: lo, toSeq: hi, rowsChecked: checked, startsAfterGenesis: lo > 1 });
        return { chains, rowsChecked: total + checked, firstBreak: result.firstBreak };
      }
      anchor = result.last;
    }
    total += checked;
    chains.push({ gatewayInstance: range.gateway_instance, chainId: range.chain_id, fromSeq: lo, toSeq: hi, rowsChecked: checked, startsAfterGenesis: lo > 1 });
  }
  return { chains, rowsChecked: total, firstBreak: undefined };
}
