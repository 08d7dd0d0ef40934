/**
 * @module tap/mask/watch-stream-masker
 * Incremental masker for `application/json` watch streams: one event per line, ADDED/MODIFIED/DELETED
 * objects masked like single objects, BOOKMARK and ERROR passed untouched, partial events carried over.
 */
import type { MaskConfig } from "./mask-config.js";
import { FramedStreamMasker, type LineMaskResult } from "./framed-stream-masker.js";
import { maskKubeDocument, type MaskWalk } from "./mask-kube-object.js";
import type { BodyMasker, StreamMaskResult } from "./mask-result.js";
import { maskFailure } from "./mask-result.js";

/** True for an empty or whitespace-only line (kube-apiserver never sends one; tolerated, passed as is). */
function isBlank(line: string): boolean {
  // Every event starts with "{": skip trim() (an allocation per line) in the common case.
  return line.charCodeAt(0) !== 0x7b && line.trim() === "";
}

/** Masks one watch event line (without its newline). Exported for tests and the CLI. */
export function maskWatchEventLine(line: string, fallbackKind: string | undefined, config: MaskConfig): LineMaskResult {
  if (isBlank(line)) return UNCHANGED;
  let event: unknown;
  try {
    event = JSON.parse(line);
  } catch {
    return maskFailure("unparseable_watch_event", "a watch event is not valid JSON");
  }
  if (typeof event !== "object" || event === null || Array.isArray(event)) {
    return maskFailure("unparseable_watch_event", "a watch event is not a JSON object");
  }
  const type = (event as { type?: unknown }).type;
  const isEvent = typeof type === "string" && "object" in event;
  if (isEvent && (type === "BOOKMARK" || type === "ERROR")) return UNCHANGED;
  // Any other type (including unknown future ones) is treated like ADDED: its object is masked. A line
  // that is not an event envelope at all (a named GET with ?watch=true answers with the plain object,
  // errors answer with a Status) is masked as a whole document, never passed as "not an event".
  const walk: MaskWalk = { config, maskedCount: 0 };
  maskKubeDocument(isEvent ? (event as { object?: unknown }).object : event, fallbackKind, walk);
  if (walk.maskedCount === 0) return UNCHANGED;
  return { ok: true, masked: JSON.stringify(event), maskedCount: walk.maskedCount };
}

const UNCHANGED: LineMaskResult = Object.freeze({ ok: true, masked: undefined, maskedCount: 0 });

/**
 * `push(chunk)` returns the masked bytes of every event completed by this chunk (possibly none);
 * the unfinished tail is held, capped at `config.maxWatchEventBytes` (a longer event fails closed).
 */
export class WatchStreamMasker implements BodyMasker {
  private readonly framed: FramedStreamMasker;

  constructor(config: MaskConfig, fallbackKind?: string) {
    this.framed = new FramedStreamMasker(
      (line) => maskWatchEventLine(line, fallbackKind, config),
      config.maxWatchEventBytes,
      "event_too_large",
    );
  }

  push(chunk: Buffer): StreamMaskResult {
    return this.framed.push(chunk);
  }

  end(): StreamMaskResult {
    return this.framed.end();
  }

  get heldBytes(): number {
    return this.framed.heldBytes;
  }
}
