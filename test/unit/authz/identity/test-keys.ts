/**
 * @module test/unit/authz/identity/test-keys
 * Per-run signing keys and token builders for identity tests (no private key is ever committed).
 */
import { randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { CryptoKey, JWK, JWTPayload } from "jose";

export type TestAlgorithm = "RS256" | "PS256" | "ES256" | "ES384" | "EdDSA" | "Ed25519";

export interface TestKey {
  readonly alg: TestAlgorithm;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  /** Public JWK including kid, alg and use. */
  readonly publicJwk: JWK;
}

export async function createTestKey(alg: TestAlgorithm, kid: string = `${alg}-${randomUUID()}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, publicJwk };
}

export interface SignOptions {
  /** Overrides the header's kid; `null` leaves kid out. */
  readonly kid?: string | null;
  readonly alg?: string;
}

/** Signs exactly the given claims (no defaults are added). */
export function signToken(key: TestKey, claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  const kid = options.kid === undefined ? key.kid : options.kid;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? key.alg, typ: "JWT", ...(kid === null ? {} : { kid }) })
    .sign(key.privateKey);
}

/** Signs with a shared secret (HS256). */
export function signHmacToken(secret: Uint8Array, claims: JWTPayload, alg = "HS256"): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(secret);
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/** An unsecured JWT (`alg: none`, empty signature), as an attacker would send it. */
export function unsecuredToken(claims: JWTPayload): string {
  return `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`;
}
