/**
 * @module test/integration/authz/identity/issuer-server
 * A real node:http OIDC issuer on 127.0.0.1:0 (discovery + JWKS) whose keys and failure modes tests can switch.
 */
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { JWK } from "jose";

/** How the JWKS endpoint answers. */
export type JwksMode = "ok" | "error-503" | "hang" | "redirect" | "not-json" | "no-keys" | "oversized";

export interface IssuerServer {
  readonly origin: string;
  readonly discoveryUrl: string;
  readonly jwksUrl: string;
  /** Keys currently served. */
  keys: JWK[];
  jwksMode: JwksMode;
  /** Overrides of the discovery document (issuer, jwks_uri). */
  discovery: Record<string, unknown>;
  /** Requests received, by path. */
  readonly requests: Map<string, number>;
  requestCount(path?: string): number;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Starts the issuer; `issuer` defaults to the server's own origin (as OIDC requires). */
export async function startIssuerServer(issuer?: string): Promise<IssuerServer> {
  const requests = new Map<string, number>();
  const hanging = new Set<ServerResponse>();
  const state: { keys: JWK[]; jwksMode: JwksMode; discovery: Record<string, unknown> } = {
    keys: [],
    jwksMode: "ok",
    discovery: {},
  };
  let origin = "";
  let closed = false;

  function handle(request: IncomingMessage, response: ServerResponse): void {
    const path = new URL(request.url ?? "/", "http://127.0.0.1").pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const json = (status: number, body: unknown): void => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(body));
    };
    if (path === "/.well-known/openid-configuration") {
      json(200, { issuer: issuer ?? origin, jwks_uri: `${origin}/jwks`, ...state.discovery });
      return;
    }
    if (path !== "/jwks") {
      json(404, { error: "not found" });
      return;
    }
    switch (state.jwksMode) {
      case "ok":
        json(200, { keys: state.keys });
        return;
      case "error-503":
        json(503, { error: "unavailable" });
        return;
      case "hang":
        hanging.add(response);
        return;
      case "redirect":
        response.writeHead(302, { location: `${origin}/jwks-elsewhere` });
        response.end();
        return;
      case "not-json":
        response.writeHead(200, { "content-type": "application/json" });
        response.end("<html>");
        return;
      case "no-keys":
        json(200, { keys: [{ kty: "oct", k: "c2VjcmV0" }] });
        return;
      case "oversized":
        // Streamed without content-length so the client's byte limit, not the header, must stop it.
        response.writeHead(200, { "content-type": "application/json" });
        response.write(`{"keys":[],"pad":"`);
        response.end(`${"x".repeat(2 * 1024 * 1024)}"}`);
        return;
    }
  }

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  origin = `http://127.0.0.1:${port}`;

  return {
    origin,
    discoveryUrl: `${origin}/.well-known/openid-configuration`,
    jwksUrl: `${origin}/jwks`,
    get keys() {
      return state.keys;
    },
    set keys(value) {
      state.keys = value;
    },
    get jwksMode() {
      return state.jwksMode;
    },
    set jwksMode(value) {
      state.jwksMode = value;
    },
    get discovery() {
      return state.discovery;
    },
    set discovery(value) {
      state.discovery = value;
    },
    requests,
    requestCount(path?: string) {
      if (path !== undefined) return requests.get(path) ?? 0;
      return [...requests.values()].reduce((sum, count) => sum + count, 0);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const response of hanging) response.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => {
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
  };
}
