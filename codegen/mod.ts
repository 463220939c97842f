/** The codegen folder's public API: client bindings from a module definition (pure, no I/O). */
export {
  CodegenError,
  GENERATED_FILE_MARKER,
  type GeneratedFile,
  generateTypeScript,
  SDK_VERSION,
  type TypeScriptBindings,
  type TypeScriptBindingsOptions,
} from "./typescript.ts";
