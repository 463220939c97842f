/** The protocol folder's public API: data shapes and codecs, no I/O. */
export * from "./algebraic_type.ts";
export * from "./bsatn.ts";
export * from "./module_def.ts";
export * from "./names.ts";
export * from "./sats_json.ts";
export * from "./module_def_v9.ts";
export * from "./ws_v2.ts";
export * from "./module_def_json.ts";
export * from "./ws_v1.ts";
export { SYS_2_0_EXPORTS, SYS_2_1_EXPORTS } from "./sys_exports.ts";
export * from "./http_wire.ts";
