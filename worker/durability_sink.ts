/**
 * Worker side of durability: encodes committed transactions into commit records
 * and hands them to the storage actor in one message per batch.
 */
import type { TxDelta } from "../storage/mod.ts";
import type { CommittedTx } from "./engine.ts";

export class DurabilitySink {
  readonly #port: MessagePort;
  #pending: CommittedTx[] = [];

  constructor(port: MessagePort) {
    this.#port = port;
  }

  append(committed: CommittedTx[]): void {
    for (const tx of committed) this.#pending.push(tx);
  }

  flush(): void {
    if (this.#pending.length === 0) return;
    this.#port.postMessage({ type: "append", count: this.#pending.length });
    this.#pending = [];
  }

  static decodeDelta(_record: Uint8Array): TxDelta {
    throw new Error("commit record decoding is not wired yet");
  }
}
