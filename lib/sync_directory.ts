/**
 * Makes the entries of directory `path` durable (fsync of the directory itself): a file created
 * or renamed into it survives a crash only once its directory is synced. Throws when the
 * directory cannot be opened; with `bestEffort`, a failed fsync is ignored (not every platform
 * can fsync a directory, and the file itself is already synced).
 */
export async function syncDirectory(
  path: string,
  options: { bestEffort?: boolean } = {},
): Promise<void> {
  const directory = await Deno.open(path, { read: true });
  try {
    const synced = directory.sync();
    await (options.bestEffort ? synced.catch(() => {}) : synced);
  } finally {
    directory.close();
  }
}
