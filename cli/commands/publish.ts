/**
 * `publish [NAME]`: build (unless a file is given), then create or update the database:
 * pre_publish (migration plan) -> PUT /v1/database/NAME, or POST /v1/database without a name.
 */
import { ApiError, type HostType, type PublishResult } from "../api_client.ts";
import { hostTypeOfFile } from "../prebuilt_module.ts";
import { expectPositionals, type FlagValues, parseVerbArgs } from "../args.ts";
import { announceConfig, authHints, type CliContext, connect, projectConfig } from "../context.ts";
import { selectTargets } from "../project_config.ts";
import { join } from "node:path";
import { CliError, UsageError } from "../errors.ts";
import { confirm } from "../io.ts";
import { buildWithProgress, defaultProjectDir } from "./build.ts";

export const PUBLISH_HELP = `Build a module and publish it to a database (create or update)

Usage: publish [OPTIONS] [NAME]

Arguments:
  [NAME]  Database name (lowercase letters, digits and single hyphens) or identity.
          Without it a new database with only an identity is created.

Options:
  -p, --project-path <DIR>    The module project (default: ./spacetimedb if it exists, else .)
                              Alias: --module-path
  -b, --bin-path <FILE>       Publish a prebuilt module instead of building: a WebAssembly
                              binary (.wasm, host type Wasm) or a JS bundle
  -j, --js-path <FILE>        Publish a prebuilt JS bundle instead of building
  -s, --server <SERVER>       Server URL or saved nickname (default: local = http://127.0.0.1:3000)
  -c, --delete-data[=MODE]    always (bare -c): wipe all data and start over;
                              on-conflict: only when the update needs a manual migration;
                              never (default). Alias: --clear-database
      --break-clients         Allow updates that disconnect connected clients
  -y, --yes                   Do not ask for confirmations
      --anonymous             Publish without an identity (you will not be able to update it)
  -d, --debug                 Build with readable names (see build --help)
      --skip-type-check       Do not type-check before bundling
      --build-options <ARGS>  Build options: '--debug' and/or '--skip-type-check'
  -h, --help                  Print help

The first publish to a server without a saved token asks it for a new identity and saves
the token in the CLI config, so you stay the owner of the databases you create.

Examples:
  publish my-db                       build ./spacetimedb (or .) and publish as my-db
  publish -p ./server my-db -s http://127.0.0.1:3000
  publish my-db -c -y                 wipe my-db's data and publish again
  publish my-db --js-path dist/bundle.js
  publish my-db --bin-path target/wasm32-unknown-unknown/release/my_module.wasm`;

const FLAGS = {
  "project-path": { type: "string", short: "p" },
  "module-path": { type: "string" },
  "js-path": { type: "string", short: "j" },
  "bin-path": { type: "string", short: "b" },
  server: { type: "string", short: "s" },
  "delete-data": { type: "boolean", short: "c" },
  "clear-database": { type: "boolean" },
  "break-clients": { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  anonymous: { type: "boolean" },
  debug: { type: "boolean", short: "d" },
  "skip-type-check": { type: "boolean" },
  "build-options": { type: "string" },
} as const;

type DeleteMode = "never" | "always" | "on-conflict";

const NAME_PATTERN = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const IDENTITY_PATTERN = /^(0x)?[0-9a-fA-F]{64}$/;

/** Checks a database name the way the official CLI does; identities pass. */
export function validateDatabaseName(name: string): void {
  if (IDENTITY_PATTERN.test(name)) return;
  if (name === "") throw new CliError("database names cannot be empty");
  if (/^[a-z0-9-]+$/.test(name) && !NAME_PATTERN.test(name)) {
    throw new CliError(`invalid hyphen in database name '${name}'`, [
      "Names are lowercase letters and digits, with single hyphens between them (e.g. my-db-2).",
    ]);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new CliError(`invalid characters in database name '${name}'`, [
      "Names are lowercase letters and digits, with single hyphens between them (e.g. my-db-2).",
    ]);
  }
}

function isLocalHost(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "localhost" || host === "127.0.0.1" || host === "[::1]" || host === "::1";
}

type PublishFlags = {
  -readonly [K in keyof FlagValues<typeof FLAGS>]: FlagValues<typeof FLAGS>[K];
};

export async function runPublish(args: string[], ctx: CliContext): Promise<number> {
  const { flags, positionals, attached } = parseVerbArgs("publish", args, FLAGS, [
    "delete-data",
    "clear-database",
    "yes",
  ]);
  expectPositionals("publish", positionals, { required: [], optional: ["NAME"] });
  const config = await projectConfig(ctx);
  if (config === undefined) return await publishOne(flags, positionals[0], attached, ctx);
  announceConfig(ctx, config);
  const targets = selectTargets(config, positionals[0]);
  const explicitPath = flags["project-path"] ?? flags["module-path"] ?? flags["js-path"] ??
    flags["bin-path"];
  if (targets.length > 1 && explicitPath !== undefined) {
    throw new UsageError(
      "--project-path/--js-path cannot be used when spacetime.json selects several databases",
      "publish",
    );
  }
  for (const target of targets) {
    const merged: PublishFlags = { ...flags };
    if (explicitPath === undefined) {
      if (target.jsPath !== undefined) merged["js-path"] = target.jsPath;
      else if (target.binPath !== undefined) merged["bin-path"] = target.binPath;
      else merged["project-path"] = target.modulePath ?? join(config.dir, "spacetimedb");
    }
    merged.server ??= target.server;
    merged.anonymous ??= target.anonymous;
    merged["break-clients"] ??= target.breakClients;
    merged["build-options"] ??= target.buildOptions;
    if (target.database !== undefined) {
      ctx.io.err(
        `Publishing module ${
          merged["js-path"] ?? merged["bin-path"] ?? merged["project-path"] ??
            merged["module-path"]
        } to database '${target.database}'\n`,
      );
    }
    const code = await publishOne(merged, target.database, attached, ctx);
    if (code !== 0) return code;
  }
  return 0;
}

function splitBuildOptions(text: string | undefined): string[] {
  return (text ?? "").split(/\s+/).filter((o) => o !== "");
}

async function publishOne(
  flags: PublishFlags,
  name: string | undefined,
  attached: Record<string, string>,
  ctx: CliContext,
): Promise<number> {
  const io = ctx.io;
  if (name !== undefined) validateDatabaseName(name);
  const deleteMode = deleteModeOf(flags["delete-data"] || flags["clear-database"], attached);
  const yes = flags.yes === true;
  for (const option of splitBuildOptions(flags["build-options"])) {
    if (option === "--debug" || option === "-d") flags = { ...flags, debug: true };
    else if (option === "--skip-type-check") flags = { ...flags, "skip-type-check": true };
    else {
      throw new UsageError(
        `build option '${option}' is not supported: use --debug or --skip-type-check`,
        "publish",
      );
    }
  }
  if (flags["js-path"] !== undefined && flags["bin-path"] !== undefined) {
    throw new UsageError("--js-path cannot be used together with --bin-path", "publish");
  }
  const filePath = flags["js-path"] ?? flags["bin-path"];
  const projectFlag = flags["project-path"] ?? flags["module-path"];
  if (filePath !== undefined && projectFlag !== undefined) {
    throw new UsageError(
      `${flags["js-path"] !== undefined ? "--js-path" : "--bin-path"} cannot be used ` +
        "together with --project-path",
      "publish",
    );
  }
  if (deleteMode !== "never" && name === undefined) {
    throw new UsageError("--delete-data needs a database NAME to act on", "publish");
  }

  let program: Uint8Array<ArrayBuffer>;
  let hostType: HostType = "Js";
  if (filePath !== undefined) {
    try {
      program = await Deno.readFile(filePath);
    } catch (error) {
      throw new CliError(`Cannot read '${filePath}': ${(error as Error).message}`);
    }
    hostType = hostTypeOfFile(program, filePath, flags["js-path"] !== undefined);
    io.err(
      `(${hostType === "Wasm" ? "WASM" : "JS"}) Skipping build. Instead we are publishing ` +
        `${filePath}\n`,
    );
  } else {
    const projectDir = await defaultProjectDir(projectFlag);
    const built = await buildWithProgress(projectDir, io, {
      debug: flags.debug,
      skipTypeCheck: flags["skip-type-check"],
    });
    program = await Deno.readFile(built.bundlePath);
  }

  const connection = await connect(ctx, {
    server: flags.server,
    anonymous: flags.anonymous,
    login: true,
  });
  const { client, serverUrl, serverLabel } = connection;
  if (!isLocalHost(serverUrl) && !yes) {
    io.err(`You are about to publish to a non-local server: ${serverUrl}\n`);
    if (!await confirm(io, "Are you sure you want to proceed?")) {
      throw new CliError("Publish aborted by user.");
    }
  }
  io.err(
    serverLabel === serverUrl
      ? `Uploading to ${serverUrl}\n`
      : `Uploading to ${serverLabel} => ${serverUrl}\n`,
  );

  let clear = false;
  let migrationToken: string | undefined;
  if (name !== undefined) {
    if (deleteMode === "always") {
      clear = await confirmDestroy(name, yes, ctx);
    } else {
      io.err("Checking for breaking changes...\n");
      let plan;
      try {
        plan = await client.prePublish(name, program, { colour: io.colour, hostType });
      } catch (error) {
        if (error instanceof ApiError) {
          throw new CliError(
            `Pre-publish check failed with status ${error.status}: ${error.message}`,
            authHints(error, connection),
          );
        }
        throw error;
      }
      if ("ManualMigrate" in plan) {
        io.err(`${plan.ManualMigrate.reason.trimEnd()}\n`);
        if (deleteMode !== "on-conflict") {
          io.err("Aborting publish due to required manual migration.\n");
          throw new CliError(
            "Aborting because publishing would require manual migration or deletion of data " +
              "and --delete-data was not specified.",
            ["Pass --delete-data=on-conflict (or -c) to wipe the data and publish anyway."],
          );
        }
        io.err("Proceeding with database clear due to --delete-data=on-conflict.\n");
        clear = await confirmDestroy(name, yes, ctx);
      } else if ("AutoMigrate" in plan) {
        const auto = plan.AutoMigrate;
        if (auto.migrate_plan.trim() !== "") io.err(`${auto.migrate_plan.trimEnd()}\n`);
        if (auto.break_clients && !flags["break-clients"] && !yes) {
          const proceed = await confirm(
            io,
            "The above changes will BREAK existing clients. Do you want to proceed?",
          );
          if (!proceed) {
            io.err("Aborting\n");
            throw new CliError("Publishing aborted by user", [
              "Pass --break-clients to accept changes that disconnect clients.",
            ]);
          }
        }
        migrationToken = auto.token;
      }
    }
  }

  io.err("Publishing module...\n");
  let result: PublishResult;
  try {
    result = await client.publish(program, { name, clear, migrationToken, hostType });
  } catch (error) {
    if (error instanceof ApiError) {
      throw new CliError(
        `Publishing failed with status ${error.status}: ${error.message}`,
        authHints(error, connection),
      );
    }
    throw error;
  }
  if ("PermissionDenied" in result) {
    const denied = result.PermissionDenied.name;
    if (flags.anonymous) {
      throw new CliError(
        `You need to be logged in as the owner of ${denied} to publish to ${denied}`,
      );
    }
    throw new CliError(`The database ${denied} is not registered to the identity you provided.`, [
      connection.identity
        ? `You are identity ${connection.identity}. Pick another name, or publish without a name.`
        : "Pick another name, or publish without a name.",
    ]);
  }
  const success = result.Success;
  if (success.op === "created") {
    io.out(
      success.domain
        ? `Created new database with name: ${success.domain}, identity: ${success.database_identity}\n`
        : `Created new database with identity: ${success.database_identity}\n`,
    );
  } else {
    io.out(
      `Updated database with name: ${
        success.domain ?? name ?? success.database_identity
      }, identity: ${success.database_identity}\n`,
    );
  }
  return 0;
}

function deleteModeOf(flag: boolean | undefined, attached: Record<string, string>): DeleteMode {
  const value = attached["delete-data"] ?? attached["clear-database"];
  if (value === undefined) return flag ? "always" : "never";
  if (value === "always" || value === "on-conflict" || value === "never") return value;
  throw new UsageError(
    `invalid value '${value}' for '--delete-data': expected always, on-conflict or never`,
    "publish",
  );
}

async function confirmDestroy(name: string, yes: boolean, ctx: CliContext): Promise<boolean> {
  ctx.io.err(`This will DESTROY the current ${name} module, and ALL corresponding data.\n`);
  if (yes) {
    ctx.io.err("Skipping confirmation due to --yes\n");
    return true;
  }
  if (!await confirm(ctx.io, `Are you sure you want to proceed? [deleting ${name}]`)) {
    throw new CliError("Aborted.", ["Pass -y to confirm without a prompt."]);
  }
  return true;
}
