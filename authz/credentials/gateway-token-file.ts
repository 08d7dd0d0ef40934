/**
 * @module authz/credentials/gateway-token-file
 * The gateway's own token, read from a file (a projected ServiceAccount token) and re-read when the kubelet
 * rotates it, without touching the disk on every request.
 */
import { readFile, stat } from "node:fs/promises";

export class GatewayTokenFile {
  readonly #path: string;
  readonly #recheckMs: number;
  readonly #now: () => number;
  #token: string | undefined;
  #mtimeMs = -1;
  #checkedAt = Number.NEGATIVE_INFINITY;

  constructor(path: string, recheckMs: number, now: () => number = Date.now) {
    this.#path = path;
    this.#recheckMs = recheckMs;
    this.#now = now;
  }

  /** The current token; throws (never returns an empty string) when the file is missing or empty. */
  async current(): Promise<string> {
    const now = this.#now();
    if (this.#token !== undefined && now - this.#checkedAt < this.#recheckMs) return this.#token;
    this.#checkedAt = now;
    const info = await stat(this.#path);
    if (this.#token === undefined || info.mtimeMs !== this.#mtimeMs) {
      const token = (await readFile(this.#path, "utf8")).trim();
      if (token === "") throw new Error(`gateway token file ${this.#path} is empty`);
      this.#token = token;
      this.#mtimeMs = info.mtimeMs;
    }
    return this.#token;
  }
}
