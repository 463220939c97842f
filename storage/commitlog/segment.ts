/** Segment files are named by the tx offset of their first commit: 00000000000000000042.log */

const SEGMENT_NAME = /^(\d{20})\.log$/;

export function segmentFileName(firstTxOffset: bigint): string {
  return `${firstTxOffset.toString().padStart(20, "0")}.log`;
}

/** The first tx offset a segment file name stands for, or undefined for other files. */
export function parseSegmentFileName(name: string): bigint | undefined {
  const match = SEGMENT_NAME.exec(name);
  return match ? BigInt(match[1]) : undefined;
}
