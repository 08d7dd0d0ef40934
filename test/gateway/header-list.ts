/**
 * @module test/gateway/header-list
 * An ordered, multi-valued, lower-case header map with Envoy's HeaderMap operations (set/add/append/remove).
 */

/**
 * Envoy keeps request and response headers as an ordered list of (lower-case key, value) entries in which a
 * key may repeat (envoy/http/header_map.h). Pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`,
 * `:status`) live in the same list, first, exactly as Envoy shows them to ext_authz and ext_proc. The
 * operations below mirror HeaderMap's `setCopy` (replace every entry of the key with one), `addCopy` (a new
 * entry), `appendCopy` (join onto the first entry with ","), and `remove` (drop every entry of the key).
 */
export class HeaderList {
  private entries: [string, string][];

  constructor(entries: Iterable<readonly [string, string]> = []) {
    this.entries = [];
    for (const [key, value] of entries) this.entries.push([key.toLowerCase(), value]);
  }

  /** All entries in order (a copy). */
  list(): [string, string][] {
    return this.entries.map(([k, v]) => [k, v]);
  }

  has(key: string): boolean {
    const k = key.toLowerCase();
    return this.entries.some(([name]) => name === k);
  }

  /** Every value of the key, in order. */
  getAll(key: string): string[] {
    const k = key.toLowerCase();
    return this.entries.filter(([name]) => name === k).map(([, value]) => value);
  }

  /** The first value of the key, as Envoy's inline-header accessors return. */
  get(key: string): string | undefined {
    const k = key.toLowerCase();
    return this.entries.find(([name]) => name === k)?.[1];
  }

  /** HeaderMap::setCopy: the first entry keeps its position and takes the value; later duplicates go. */
  set(key: string, value: string): void {
    const k = key.toLowerCase();
    const index = this.entries.findIndex(([name]) => name === k);
    if (index < 0) {
      this.add(k, value);
      return;
    }
    this.entries = this.entries.filter(([name], i) => name !== k || i === index);
    const entry = this.entries.find(([name]) => name === k);
    if (entry) entry[1] = value;
  }

  /** HeaderMap::addCopy: a new entry; pseudo-headers are kept ahead of regular headers. */
  add(key: string, value: string): void {
    const k = key.toLowerCase();
    if (k.startsWith(":")) {
      const firstRegular = this.entries.findIndex(([name]) => !name.startsWith(":"));
      if (firstRegular >= 0) {
        this.entries.splice(firstRegular, 0, [k, value]);
        return;
      }
    }
    this.entries.push([k, value]);
  }

  /** HeaderMap::appendCopy: join onto the existing value with ","; add when absent. */
  append(key: string, value: string): void {
    const k = key.toLowerCase();
    const entry = this.entries.find(([name]) => name === k);
    if (!entry) {
      this.add(k, value);
      return;
    }
    entry[1] = entry[1].length === 0 ? value : `${entry[1]},${value}`;
  }

  remove(key: string): void {
    const k = key.toLowerCase();
    this.entries = this.entries.filter(([name]) => name !== k);
  }

  /** Regular (non-pseudo) entries, for writing to a Node HTTP/1 or HTTP/2 peer. */
  regular(): [string, string][] {
    return this.entries.filter(([name]) => !name.startsWith(":")).map(([k, v]) => [k, v]);
  }

  clone(): HeaderList {
    return new HeaderList(this.entries);
  }
}
