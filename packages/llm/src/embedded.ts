/**
 * The CLI's default model: `brown-lm` from `@wasmformer/models`, the small GPT-2 the project trains
 * on the Brown corpus. The package (all embedded checkpoints, several MB) is no dependency of llm
 * (API users never download it; see the README): the CLI imports it at run time, from
 * llm's own location first (installed beside it) and then from the current directory (installed
 * in the project the CLI runs in).
 */
import { InputError } from "@wasmformer/core";

/** The package holding the embedded checkpoints. */
export const EMBEDDED_MODELS_PACKAGE = "@wasmformer/models";
/** The model `wasmformer generate` runs without `--model`. */
export const DEFAULT_MODEL = "brown-lm";

/** What the models package exports that the CLI uses. */
interface ModelsModule {
  modelPath(name: string): Promise<string>;
}

/** Imports a module by specifier or file URL (the default: dynamic `import`). */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

const notFound = (e: unknown) => {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
};

/**
 * The folder of the default model. Throws `InputError` naming the package and how to install it
 * when `@wasmformer/models` is found neither beside llm nor in the current directory.
 */
export async function embeddedModelFolder(
  importer: ModuleImporter = (s) => import(s),
  cwd: string = process.cwd(),
): Promise<string> {
  /** The module, or undefined when it is not installed there (other failures are thrown). */
  const load = async (specifier: string) => {
    try {
      return (await importer(specifier)) as ModelsModule;
    } catch (e) {
      if (!notFound(e)) throw e;
      return undefined;
    }
  };
  let mod = await load(EMBEDDED_MODELS_PACKAGE);
  if (!mod) {
    // a CLI installed globally (or run by npx) does not see the project's node_modules: look there too
    const { createRequire } = await import("node:module");
    const { join } = await import("node:path");
    const { pathToFileURL } = await import("node:url");
    let file: string | undefined;
    try {
      file = createRequire(join(cwd, "package.json")).resolve(EMBEDDED_MODELS_PACKAGE);
    } catch (e) {
      if (!notFound(e)) throw e;
    }
    if (file) mod = await load(pathToFileURL(file).href);
  }
  if (!mod) {
    throw new InputError(
      `--model: not given, and the default model (${DEFAULT_MODEL}) is not installed: it ships in ${EMBEDDED_MODELS_PACKAGE}, ` +
        `an optional package of checkpoints. Install it beside @wasmformer/llm (npm install ${EMBEDDED_MODELS_PACKAGE}) ` +
        "or pass --model <folder> (a Hugging Face GPT-2 or Llama-family folder).",
    );
  }
  if (typeof mod.modelPath !== "function")
    throw new InputError(
      `${EMBEDDED_MODELS_PACKAGE} does not export modelPath(): update it to the version of @wasmformer/llm`,
    );
  return mod.modelPath(DEFAULT_MODEL);
}
