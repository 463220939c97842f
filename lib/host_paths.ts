/**
 * Text that leaves the host (replies, close reasons, module logs) must not tell a client or a
 * tenant where or what the host runs: file URLs and the host's code directory are replaced.
 */

/** The repository root of the host's code (lib/ is one level down), as a path. */
const HOST_ROOT_PATH = decodeURIComponent(new URL("../", import.meta.url).pathname);
const FILE_URL = /file:\/\/[^\s)'"`]*/g;

/** Replaces file URLs and the host's code directory in `text` with `<host>`. */
export function redactHostPaths(text: string): string {
  let out = text.replace(FILE_URL, "<host>");
  if (HOST_ROOT_PATH.length > 1) out = out.split(HOST_ROOT_PATH).join("<host>/");
  return out;
}
