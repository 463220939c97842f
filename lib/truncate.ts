/**
 * Cuts `text` to at most `maxChars` UTF-16 code units, ending with a marker that says how many
 * were cut ("… [N characters truncated]"); never splits a surrogate pair. Short text is
 * returned as is. The result is a fresh flat string, so it does not keep `text` alive.
 */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const marker = (cut: number) => `… [${cut} characters truncated]`;
  // The marker's length depends on the count it reports; the count's digits are at most
  // those of text.length.
  let keep = Math.max(0, maxChars - marker(text.length).length);
  const code = text.charCodeAt(keep - 1);
  if (keep > 0 && code >= 0xd800 && code <= 0xdbff) keep--;
  const head = text.slice(0, keep);
  return `${head}${marker(text.length - keep)}`.slice(0, maxChars);
}
