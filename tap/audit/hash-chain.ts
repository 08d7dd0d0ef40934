/**
 * @module tap/audit/hash-chain
 * Tamper evidence: canonical row form, the per-instance hash chain, and the pure verifier of a chain segment.
 */
import { hash as digestOnce } from "node:crypto";
import { APPROVAL_COLUMNS, NUMERIC_COLUMNS, REQUEST_COLUMNS, type AuditTable } from "./audit-row.js";

/** prev_hash of the first row of every chain. */
export const GENESIS_HASH = "0".repeat(64);

function columnsOf(table: AuditTable): readonly string[] {
  return table === "requests" ? REQUEST_COLUMNS : APPROVAL_COLUMNS;
}

/**
 * The canonical form: a JSON object of the table's columns in their fixed order, without `hash`. Numbers are
 * normalised (servers may return 64-bit integers quoted), so a row read back renders like the row written.
 * The sink stores exactly this text plus the hash as the JSONEachRow line, so it is serialised once.
 */
export function canonicalRow(table: AuditTable, row: Readonly<Record<string, unknown>>): string {
  const out: Record<string, unknown> = {};
  for (const column of columnsOf(table)) {
    const v = row[column];
    out[column] = NUMERIC_COLUMNS.has(column) ? (typeof v === "string" ? Number(v) : v ?? 0) : v ?? "";
  }
  return JSON.stringify(out);
}

/** hash = sha256(prev_hash + "\n" + table + "\n" + canonical row), lower-case hex. */
export function chainHash(prevHash: string, table: AuditTable, canonical: string): string {
  // One-shot hash(): measurably cheaper per row than createHash().update().digest() on the request path.
  return digestOnce("sha256", `${prevHash}\n${table}\n${canonical}`, "hex");
}

/** The JSONEachRow line for a canonical row: the same text with `hash` appended as the last key. */
export function rowLine(canonical: string, hash: string): string {
  return canonical.slice(0, -1) + hashTail(hash);
}

/** What follows the canonical text minus its closing brace in a row line. */
export function hashTail(hash: string): string {
  return `,"hash":"${hash}"}`;
}

/** A row as the verifier needs it: which table, its chain position, and all its columns. */
export interface ChainedRow {
  readonly table: AuditTable;
  readonly row: Readonly<Record<string, unknown>>;
}

export type ChainBreakKind =
  /** The row's own hash does not match its content: edited. */
  | "hash_mismatch"
  /** chain_seq jumps: one or more rows between were deleted. */
  | "missing_rows"
  /** prev_hash does not match the preceding row's hash (deleted and re-sequenced, or forged). */
  | "prev_hash_mismatch"
  /** Two different rows claim the same chain position. */
  | "conflicting_rows"
  /** The chain does not begin at the genesis row when the whole chain was requested. */
  | "missing_start";

export interface ChainBreak {
  readonly kind: ChainBreakKind;
  readonly gatewayInstance: string;
  readonly chainId: string;
  /** The first position at which the chain no longer verifies. */
  readonly chainSeq: number;
  readonly table: AuditTable;
  readonly detail: string;
}

export interface ChainSegmentResult {
  readonly rowsChecked: number;
  readonly firstBreak: ChainBreak | undefined;
  /** Last verified (seq, hash), so a caller can verify a long chain page by page. */
  readonly last: { readonly seq: number; readonly hash: string } | undefined;
}

/**
 * Verify rows of ONE chain, sorted by chain_seq. `anchor` is the (seq, hash) of the row just before the
 * first one, when known: a row with seq 1 must follow GENESIS; otherwise, without an anchor, the first row
 * is trusted as the start (older rows may have left through TTL).
 */
export function verifyChainSegment(
  rows: readonly ChainedRow[],
  anchor: { readonly seq: number; readonly hash: string } | undefined,
  opts: { readonly requireGenesis?: boolean } = {},
): ChainSegmentResult {
  let last = anchor;
  let checked = 0;
  const str = (v: unknown): string => (typeof v === "string" ? v : "");
  for (const { table, row } of rows) {
    const seq = Number(row["chain_seq"]);
    const prev = str(row["prev_hash"]);
    const hash = str(row["hash"]);
    const at = (kind: ChainBreakKind, detail: string): ChainSegmentResult => ({
      rowsChecked: checked,
      firstBreak: {
        kind, table, detail, chainSeq: seq,
        gatewayInstance: str(row["gateway_instance"]),
        chainId: str(row["chain_id"]),
      },
      last,
    });
    if (last !== undefined && seq === last.seq) {
      // A retried insert that the store has not collapsed yet: identical content is harmless.
      if (hash === last.hash) continue;
      return at("conflicting_rows", `two different rows at position ${seq}`);
    }
    if (chainHash(prev, table, canonicalRow(table, row)) !== hash) {
      return at("hash_mismatch", `row at position ${seq} does not match its hash (edited)`);
    }
    if (last === undefined) {
      if (seq === 1 && prev !== GENESIS_HASH) return at("prev_hash_mismatch", "first row does not follow genesis");
      if (seq !== 1 && opts.requireGenesis === true) return at("missing_start", `chain starts at position ${seq}, rows before it are missing`);
    } else {
      if (seq !== last.seq + 1) return at("missing_rows", `positions ${last.seq + 1}..${seq - 1} are missing (deleted)`);
      if (prev !== last.hash) return at("prev_hash_mismatch", `row at position ${seq} does not link to position ${last.seq}`);
    }
    last = { seq, hash };
    checked++;
  }
  return { rowsChecked: checked, firstBreak: undefined, last };
}
