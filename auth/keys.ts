/**
 * The server's token-signing key pair: ECDSA P-256, created once and kept in the data dir so
 * tokens stay valid across restarts. The private key (PKCS#8 PEM) is the source of truth; the
 * public key (SPKI PEM, served at /v1/identity/public-key) is derived from it.
 */
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, importJWK, importPKCS8 } from "jose";
import { log } from "../lib/log.ts";
import { syncDirectory } from "../lib/sync_directory.ts";

export const SIGNING_ALGORITHM = "ES256";
export const KEYS_DIR_NAME = "keys";
export const PRIVATE_KEY_FILE_NAME = "private.pem";
export const PUBLIC_KEY_FILE_NAME = "public.pem";

export interface SigningKeys {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** SPKI PEM text, `-----BEGIN PUBLIC KEY-----`, ending in a newline. */
  publicKeyPem: string;
}

export interface KeyPaths {
  directory: string;
  privateKeyPath: string;
  publicKeyPath: string;
}

export function keyPaths(dataDir: string): KeyPaths {
  const directory = `${dataDir.replace(/\/+$/, "")}/${KEYS_DIR_NAME}`;
  return {
    directory,
    privateKeyPath: `${directory}/${PRIVATE_KEY_FILE_NAME}`,
    publicKeyPath: `${directory}/${PUBLIC_KEY_FILE_NAME}`,
  };
}

/**
 * Reads the key pair from `<dataDir>/keys/`, creating it on first start. Creation is atomic:
 * the private key is written to a temporary file and hard-linked into place, so two servers
 * starting at once on the same data dir end up with the same key.
 */
export async function loadOrCreateSigningKeys(dataDir: string): Promise<SigningKeys> {
  const paths = keyPaths(dataDir);
  await Deno.mkdir(paths.directory, { recursive: true, mode: 0o700 });
  let privatePem = await readTextOrNull(paths.privateKeyPath);
  if (privatePem === null) {
    privatePem = await createPrivateKeyFile(paths);
  }
  const keys = await keysFromPrivatePem(privatePem, paths.privateKeyPath);
  const storedPublicPem = await readTextOrNull(paths.publicKeyPath);
  if (storedPublicPem !== keys.publicKeyPem) {
    if (storedPublicPem !== null) {
      log.warn("Public key file does not match the private key; rewriting it", {
        path: paths.publicKeyPath,
      });
    }
    await writeFileAtomically(paths.publicKeyPath, keys.publicKeyPem, 0o644);
  }
  return keys;
}

/** Parses a PKCS#8 P-256 private key and derives its public half. */
export async function keysFromPrivatePem(
  privatePem: string,
  sourceName = "private key",
): Promise<SigningKeys> {
  let privateKey: CryptoKey;
  try {
    privateKey = await importPKCS8(privatePem, SIGNING_ALGORITHM, { extractable: true });
  } catch (error) {
    throw new Error(
      `Cannot read signing key "${sourceName}": expected a PKCS#8 P-256 PEM (${errorText(error)})`,
    );
  }
  const { kty, crv, x, y } = await exportJWK(privateKey);
  const publicKey = await importJWK({ kty, crv, x, y }, SIGNING_ALGORITHM, { extractable: true });
  if (!(publicKey instanceof CryptoKey)) {
    throw new TypeError(`Cannot derive the public key from "${sourceName}"`);
  }
  const publicKeyPem = withFinalNewline(await exportSPKI(publicKey));
  return { privateKey, publicKey, publicKeyPem };
}

async function createPrivateKeyFile(paths: KeyPaths): Promise<string> {
  const { privateKey } = await generateKeyPair(SIGNING_ALGORITHM, { extractable: true });
  const pem = withFinalNewline(await exportPKCS8(privateKey));
  const temporaryPath = `${paths.privateKeyPath}.${crypto.randomUUID()}.tmp`;
  await writeDurably(temporaryPath, pem, 0o600);
  try {
    await Deno.link(temporaryPath, paths.privateKeyPath);
    // Not every platform can fsync a directory; the key file itself is already synced.
    await syncDirectory(paths.directory).catch(() => {});
    log.info("Created a new token signing key", { path: paths.privateKeyPath });
    return pem;
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    // Another process created the key first: use theirs.
    return await Deno.readTextFile(paths.privateKeyPath);
  } finally {
    await Deno.remove(temporaryPath).catch(() => {});
  }
}

async function writeFileAtomically(path: string, text: string, mode: number): Promise<void> {
  const temporaryPath = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await writeDurably(temporaryPath, text, mode);
    await Deno.rename(temporaryPath, path);
  } catch (error) {
    await Deno.remove(temporaryPath).catch(() => {});
    throw error;
  }
}

async function writeDurably(path: string, text: string, mode: number): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true, mode });
  try {
    const bytes = new TextEncoder().encode(text);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
}

async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function withFinalNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
