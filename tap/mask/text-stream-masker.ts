/**
 * @module tap/mask/text-stream-masker
 * Incremental masker for text bodies (pods/log, follow or not): line framing plus the text detectors,
 * with PEM private-key blocks that span lines masked until their END line.
 */
import type { MaskConfig } from "./mask-config.js";
import { FramedStreamMasker, type LineMaskResult } from "./framed-stream-masker.js";
import type { BodyMasker, StreamMaskResult } from "./mask-result.js";
import { maskedPlaceholder } from "./masked-value.js";
import { findPemEnd, maskText } from "./text-detectors.js";

export class TextStreamMasker implements BodyMasker {
  private readonly framed: FramedStreamMasker;
  /** Inside a PEM private key block that began on an earlier line. */
  private inPem = false;

  constructor(private readonly config: MaskConfig) {
    this.framed = new FramedStreamMasker(
      (line) => this.maskLine(line),
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

  private maskLine(line: string): LineMaskResult {
    if (!this.config.maskLogs) return UNCHANGED;
    let text = line;
    let prefix = "";
    let maskedCount = 0;
    if (this.inPem) {
      const end = findPemEnd(text);
      if (end === -1) {
        // The whole line is key material: emit only a placeholder so line counts stay meaningful.
        return { ok: true, masked: maskedPlaceholder(text, this.config), maskedCount: 1 };
      }
      this.inPem = false;
      prefix = maskedPlaceholder(text.slice(0, end), this.config);
      maskedCount++;
      // Keep the END marker readable, like maskText does for single-line blocks.
      const markerStart = text.lastIndexOf("-----END ", end);
      prefix = markerStart >= 0 ? `${prefix}${text.slice(markerStart, end)}` : prefix;
      text = text.slice(end);
    }
    const result = maskText(text, this.config);
    maskedCount += result.maskedCount;
    if (result.unterminatedPem) this.inPem = true;
    if (maskedCount === 0) return UNCHANGED;
    return { ok: true, masked: prefix + result.text, maskedCount };
  }
}

const UNCHANGED: LineMaskResult = Object.freeze({ ok: true, masked: undefined, maskedCount: 0 });
