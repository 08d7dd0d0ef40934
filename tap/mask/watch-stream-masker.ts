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

const NEWLINE_BUFFER = Buffer.from("\n");

/** Masks one watch event line (without its newline). Exported for tests and the CLI. */
export function maskWatchEventLine(
  line: Buffer,
  terminated: boolean,
  fallbackKind: string | undefined,
  config: MaskConfig,
): LineMaskResult {
  const text = line.toString("utf8");
  if (text.trim() === "") return { ok: true, out: terminated ? Buffer.concat([line, NEWLINE_BUFFER]) : line, maskedCount: 0 };
  let event: unknown;
  try {
    event = JSON.parse(text);
  } catch {
    return maskFailure("unparseable_watch_event", "a watch event is not valid JSON");
  }
  if (typeof event !== "object" || event === null || Array.isArray(event)) {
    return maskFailure("unparseable_watch_event", "a watch event is not a JSON object");
  }
  const type = (event as { type?: unknown }).type;
  const isEvent = typeof type === "string" && "object" in event;
  if (isEvent && (type === "BOOKMARK" || type === "ERROR")) {
    return { ok: true, out: terminated ? Buffer.concat([line, NEWLINE_BUFFER]) : line, maskedCount: 0 };
  }
  // Any other type (including unknown future ones) is treated like ADDED: its object is masked. A line
  // that is not an event envelope at all (a named GET with ?watch=true answers with the plain object,
  // errors answer with a Status) is masked as a whole document, never passed as "not an event".
  const walk: MaskWalk = { config, maskedCount: 0 };
  maskKubeDocument(isEvent ? (event as { object?: unknown }).object : event, fallbackKind, walk);
  if (walk.maskedCount === 0) {
    return { ok: true, out: terminated ? Buffer.concat([line, NEWLINE_BUFFER]) : line, maskedCount: 0 };
  }
  const masked = JSON.stringify(event);
  return { ok: true, out: Buffer.from(terminated ? `${masked}\n` : masked, "utf8"), maskedCount: walk.maskedCount };
}

/**
 * `push(chunk)` returns the masked bytes of every event completed by this chunk (possibly none);
 * the unfinished tail is held, capped at `config.maxWatchEventBytes` (a longer event fails closed).
 */
export class WatchStreamMasker implements BodyMasker {
  private readonly framed: FramedStreamMasker;

  constructor(config: MaskConfig, fallbackKind?: string) {
    this.framed = new FramedStreamMasker(
      (line, terminated) => maskWatchEventLine(line, terminated, fallbackKind, config),
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
