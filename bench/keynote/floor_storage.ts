/**
 * The storage worker of bench/keynote/floor_server.ts (`durable`): appends each batch it is sent
 * to a log file and answers with the batch ids once they are durable, one write per batch and one
 * fdatasync per group, the group being every batch that arrived before the flush ran. The flush is
 * queued behind waiting messages the way storage/durability_worker.ts queues its own (a message
 * channel hop, put off while messages keep arriving). The file is filled with zeros ahead of time
 * and written round-robin, so an fdatasync never changes its size.
 *
 * First message: `{ path }` (answered with an empty list once the file is ready); then `{ id,
 * bytes }` per batch.
 */
/// <reference lib="deno.worker" />

const FILE_BYTES = 64 << 20;
const DEFER_ROUNDS_MAX = 64;

let file: Deno.FsFile | undefined;
let position = 0;
let pending: Array<{ id: number; bytes: Uint8Array }> = [];
const flushChannel = new MessageChannel();
let flushQueued = false;
let arrivals = 0;
let rounds = 0;

flushChannel.port1.onmessage = () => {
  if (arrivals > 0 && rounds < DEFER_ROUNDS_MAX) {
    arrivals = 0;
    rounds++;
    flushChannel.port2.postMessage(null);
    return;
  }
  flushQueued = false;
  arrivals = 0;
  rounds = 0;
  flush();
};

function flush(): void {
  const batches = pending;
  pending = [];
  const ids: number[] = [];
  for (const { id, bytes } of batches) {
    if (position + bytes.length > FILE_BYTES) {
      position = 0;
      file!.seekSync(0, Deno.SeekMode.Start);
    }
    for (let written = 0; written < bytes.length;) {
      written += file!.writeSync(bytes.subarray(written));
    }
    position += bytes.length;
    ids.push(id);
  }
  file!.syncDataSync();
  self.postMessage(ids);
}

self.onmessage = (event: MessageEvent) => {
  const message = event.data;
  if (file === undefined) {
    file = Deno.openSync(message.path, { create: true, read: true, write: true, truncate: true });
    const zeros = new Uint8Array(1 << 20);
    for (let at = 0; at < FILE_BYTES; at += zeros.length) file.writeSync(zeros);
    file.syncSync();
    file.seekSync(0, Deno.SeekMode.Start);
    self.postMessage([]);
    return;
  }
  pending.push(message);
  arrivals++;
  if (!flushQueued) {
    flushQueued = true;
    flushChannel.port2.postMessage(null);
  }
};
