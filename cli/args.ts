/**
 * Argument parsing for every verb, on top of node:util parseArgs (strict mode, so unknown
 * flags are errors). Adds: negative numbers as positionals (`call db add -5`), flags that
 * take an optional `=value` (`--delete-data=on-conflict`), and readable error texts.
 */
import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";

export interface FlagSpec {
  type: "boolean" | "string";
  short?: string;
  /** For string flags: may be given more than once. */
  multiple?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export type FlagValues<S extends FlagSpecs> = {
  [K in keyof S]?: S[K]["type"] extends "boolean" ? boolean
    : S[K]["multiple"] extends true ? string[]
    : string;
};

export interface ParsedArgs<S extends FlagSpecs> {
  flags: FlagValues<S>;
  positionals: string[];
  /** Values given as `--flag=value` to flags listed in `optionalValueFlags`. */
  attached: Record<string, string>;
}

const NEGATIVE_NUMBER = /^-\d/;

/**
 * Parses `args` (without the verb). `optionalValueFlags` names boolean flags that may
 * also be written `--flag=value`; the value is returned in `attached`.
 */
export function parseVerbArgs<S extends FlagSpecs>(
  verb: string,
  args: string[],
  specs: S,
  optionalValueFlags: string[] = [],
): ParsedArgs<S> {
  const attached: Record<string, string> = {};
  const negatives = new Map<string, string>();
  const prepared: string[] = [];
  let afterTerminator = false;
  for (const arg of args) {
    if (afterTerminator) {
      prepared.push(arg);
      continue;
    }
    if (arg === "--") {
      afterTerminator = true;
      prepared.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 2) {
      const name = arg.slice(2, eq);
      if (optionalValueFlags.includes(name)) {
        attached[name] = arg.slice(eq + 1);
        prepared.push(`--${name}`);
        continue;
      }
    }
    if (NEGATIVE_NUMBER.test(arg) && !isShortFlag(arg, specs)) {
      const placeholder = `\u0000neg${negatives.size}`;
      negatives.set(placeholder, arg);
      prepared.push(placeholder);
      continue;
    }
    prepared.push(arg);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: prepared,
      options: specs,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(describeParseError(error), verb);
  }
  const positionals = parsed.positionals.map((p) => negatives.get(p) ?? p);
  return { flags: parsed.values as FlagValues<S>, positionals, attached };
}

function isShortFlag(arg: string, specs: FlagSpecs): boolean {
  return Object.values(specs).some((spec) => spec.short !== undefined && arg === `-${spec.short}`);
}

function describeParseError(error: unknown): string {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const match = /Unknown option '([^']+)'/.exec(message);
    return `unexpected argument '${match ? match[1] : message}' found`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const match = /Option '([^']+)'/.exec(message);
    if (/argument missing|ambiguous/.test(message) && match) {
      return `a value is required for '${match[1]}' but none was supplied`;
    }
    if (match) return `'${match[1]}' does not take a value`;
  }
  return message.split("\n")[0];
}

/** Fails when more positionals were given than the verb accepts. */
export function expectPositionals(
  verb: string,
  positionals: string[],
  names: { required: string[]; optional?: string[]; rest?: boolean },
): void {
  const missing = names.required.slice(positionals.length);
  if (missing.length > 0) {
    throw new UsageError(
      `the following required arguments were not provided: ${
        missing.map((n) => `<${n}>`).join(" ")
      }`,
      verb,
    );
  }
  const maxCount = names.required.length + (names.optional?.length ?? 0);
  if (!names.rest && positionals.length > maxCount) {
    throw new UsageError(`unexpected argument '${positionals[maxCount]}' found`, verb);
  }
}

/** Parses a non-negative integer flag value. */
export function parseCount(verb: string, flag: string, value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`invalid value '${value}' for '${flag}': expected a whole number`, verb);
  }
  return Number(value);
}
