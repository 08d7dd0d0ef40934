/**
 * @module test/unit/authz/check/redact-headers
 * Credential-bearing header values never reach logs or audit rows.
 */
import { describe, expect, it } from "vitest";
import { REDACTED, redactHeaders } from "../../../../authz/check/redact-headers.js";

describe("redactHeaders", () => {
  it("replaces credential values and keeps the rest", () => {
    expect(
      redactHeaders({
        authorization: "Bearer eyJ.secret",
        cookie: "a=b",
        "x-api-key": "k",
        "x-auth-token": "t",
        "x-vault-secret": "s",
        accept: "application/json",
        ":path": "/api/v1/pods",
      }),
    ).toEqual({
      authorization: REDACTED,
      cookie: REDACTED,
      "x-api-key": REDACTED,
      "x-auth-token": REDACTED,
      "x-vault-secret": REDACTED,
      accept: "application/json",
      ":path": "/api/v1/pods",
    });
  });
});
