/**
 * @module tap/audit/open-audit-store
 * Opens the store a parsed audit config names: embedded chDB (default) or a ClickHouse server.
 */
import type { AuditConfig } from "./audit-config.js";
import type { AuditStore } from "./audit-store.js";
import { ChdbAuditStore } from "./chdb-store.js";
import { ClickHouseServerAuditStore } from "./clickhouse-server-store.js";

export async function openAuditStore(config: AuditConfig): Promise<AuditStore> {
  return config.store.kind === "embedded"
    ? ChdbAuditStore.open({ dataDir: config.store.dataDir, database: config.store.database })
    : new ClickHouseServerAuditStore(config.store);
}
