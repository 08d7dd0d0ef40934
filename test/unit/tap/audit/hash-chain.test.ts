/**
 * @module test/unit/tap/audit/hash-chain.test
 * The hash chain: canonical form and the verifier's detection of edits, deletions, forgeries and duplicates.
 */
import { describe, expect, it } from "vitest";
import { buildApprovalRow, buildRequestRow } from "../../../../tap/audit/audit-row.js";
import { canonicalRow, chainHash, GENESIS_HASH, rowLine, verifyChainSegment, type ChainedRow } from "../../../../tap/audit/hash-chain.js";
import { approvalEvent, decisionEvent, exchangeFor } from "../../../helpers/audit-events.js";

const limits = { requestBodyMaxBytes: 1024, responseBodyMaxBytes: 1024 };

/** A chain as the sink writes it, rows as the store would return them. */
function chain(n: number): ChainedRow[] {
  let prev = GENESIS_HASH;
  const rows: ChainedRow[] = [];
  for (let seq = 1; seq <= n; seq++) {
    const table = seq % 4 === 0 ? "approvals" as const : "requests" as const;
    const d = decisionEvent();
    const body = table === "requests" ? buildRequestRow(d, exchangeFor(d), limits, 0) : buildApprovalRow(approvalEvent());
    const row: Record<string, unknown> = { ...body, gateway_instance: "gw", chain_id: "c1", chain_seq: seq, prev_hash: prev };
    const canonical = JSON.stringify(row);
    expect(canonical).toBe(canonicalRow(table, row));
    const hash = chainHash(prev, table, canonical);
    rows.push({ table, row: JSON.parse(rowLine(canonical, hash)) as Record<string, unknown> });
    prev = hash;
  }
  return rows;
}

describe("verifyChainSegment", () => {
  it("accepts an intact chain from genesis", () => {
    const rows = chain(10);
    const r = verifyChainSegment(rows, undefined, { requireGenesis: true });
    expect(r.firstBreak).toBeUndefined();
    expect(r.rowsChecked).toBe(10);
    expect(r.last?.seq).toBe(10);
  });

  it("accepts 64-bit integers returned as strings", () => {
    const rows = chain(3).map(({ table, row }) => ({ table, row: { ...row, chain_seq: String(row["chain_seq"]), time_us: String(row["time_us"]) } }));
    expect(verifyChainSegment(rows, undefined).firstBreak).toBeUndefined();
  });

  it("detects an edited row", () => {
    const rows = chain(10);
    rows[4] = { table: rows[4]!.table, row: { ...rows[4]!.row, response_status: 500 } };
    expect(verifyChainSegment(rows, undefined).firstBreak).toMatchObject({ kind: "hash_mismatch", chainSeq: 5 });
  });

  it("detects a deleted row", () => {
    const rows = chain(10);
    rows.splice(6, 1);
    expect(verifyChainSegment(rows, undefined).firstBreak).toMatchObject({ kind: "missing_rows", chainSeq: 8 });
  });

  it("detects a deleted row that was re-hashed but not re-linked", () => {
    const rows = chain(5);
    const forged = { ...rows[2]!.row, chain_seq: 2, prev_hash: "f".repeat(64) };
    const hash = chainHash("f".repeat(64), rows[2]!.table, canonicalRow(rows[2]!.table, forged));
    const tampered = [rows[0]!, { table: rows[2]!.table, row: { ...forged, hash } }];
    expect(verifyChainSegment(tampered, undefined).firstBreak).toMatchObject({ kind: "prev_hash_mismatch", chainSeq: 2 });
  });

  it("detects a missing start when the whole chain is required, and a first row not following genesis", () => {
    const rows = chain(5);
    expect(verifyChainSegment(rows.slice(2), undefined, { requireGenesis: true }).firstBreak).toMatchObject({ kind: "missing_start", chainSeq: 3 });
    expect(verifyChainSegment(rows.slice(2), undefined).firstBreak).toBeUndefined();
  });

  it("links a page to the previous page's last row", () => {
    const rows = chain(6);
    const first = verifyChainSegment(rows.slice(0, 3), undefined);
    expect(verifyChainSegment(rows.slice(3), first.last).firstBreak).toBeUndefined();
    expect(verifyChainSegment(rows.slice(4), first.last).firstBreak).toMatchObject({ kind: "missing_rows" });
  });

  it("tolerates an identical duplicate (a retried batch) but not a conflicting one", () => {
    const rows = chain(4);
    expect(verifyChainSegment([rows[0]!, rows[1]!, rows[1]!, rows[2]!], undefined).firstBreak).toBeUndefined();
    const conflicting = { table: rows[1]!.table, row: { ...rows[1]!.row, hash: "0".repeat(64) } };
    expect(verifyChainSegment([rows[0]!, rows[1]!, conflicting], undefined).firstBreak).toMatchObject({ kind: "conflicting_rows", chainSeq: 2 });
  });
});
