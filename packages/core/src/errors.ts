/**
 * Typed errors. Every error the library throws on bad input is a `WasmformerError` with a stable
 * `code`, so callers (and the parity runner) can tell a rejected input from a bug.
 */

/** Base class of every error thrown by a `@wasmformer/*` package on purpose. */
export class WasmformerError extends Error {
  /** Stable machine-readable category, e.g. `"safetensors"`, `"shape"`, `"config"`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    // an explicit name per class (set below), not new.target.name: minifiers rename classes
    this.name = "WasmformerError";
  }
}

/** A safetensors file is malformed. `offset` is the byte offset at fault, `tensor` the tensor name. */
export class SafetensorsError extends WasmformerError {
  readonly offset: number | undefined;
  readonly tensor: string | undefined;
  constructor(message: string, where: { offset?: number; tensor?: string } = {}) {
    const at = [
      where.tensor !== undefined ? `tensor "${where.tensor}"` : "",
      where.offset !== undefined ? `byte ${where.offset}` : "",
    ]
      .filter(Boolean)
      .join(", ");
    super("safetensors", at ? `safetensors: ${message} (${at})` : `safetensors: ${message}`);
    this.name = "SafetensorsError";
    this.offset = where.offset;
    this.tensor = where.tensor;
  }
}

/** A GGUF file is malformed or unsupported. `offset` is the byte offset at fault; `tensor`/`key` what it belongs to. */
export class GgufError extends WasmformerError {
  readonly offset: number | undefined;
  readonly tensor: string | undefined;
  readonly key: string | undefined;
  constructor(message: string, where: { offset?: number; tensor?: string; key?: string } = {}) {
    const at = [
      where.tensor !== undefined ? `tensor "${where.tensor}"` : "",
      where.key !== undefined && !message.includes(`"${where.key}"`) ? `key "${where.key}"` : "",
      where.offset !== undefined ? `byte ${where.offset}` : "",
    ]
      .filter(Boolean)
      .join(", ");
    super("gguf", at ? `gguf: ${message} (${at})` : `gguf: ${message}`);
    this.name = "GgufError";
    this.offset = where.offset;
    this.tensor = where.tensor;
    this.key = where.key;
  }
}

/** A config.json (or other model configuration) is missing a field or has an ill-typed one. */
export class ConfigError extends WasmformerError {
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super("config", field ? `config: ${field}: ${message}` : `config: ${message}`);
    this.name = "ConfigError";
    this.field = field;
  }
}

/** Tensor shapes or dtypes do not fit an operation or a model. */
export class ShapeError extends WasmformerError {
  constructor(message: string) {
    super("shape", message);
    this.name = "ShapeError";
  }
}

/** Checkpoint tensors do not fit the model: missing, unexpected or of the wrong shape. */
export class WeightsError extends WasmformerError {
  readonly names: string[];
  constructor(message: string, names: string[] = []) {
    super("weights", message);
    this.name = "WeightsError";
    this.names = names;
  }
}

/** An argument or input value is invalid (out of range ids, NaN where forbidden, bad option). */
export class InputError extends WasmformerError {
  constructor(message: string) {
    super("input", message);
    this.name = "InputError";
  }
}

/** The wasm module could not be loaded, or memory could not grow to what a model needs. */
export class WasmError extends WasmformerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("wasm", message, options);
    this.name = "WasmError";
  }
}

/** A file in a text format (vocab, merges, vectors, JSON) is malformed at `line`/`column`. */
export class ParseError extends WasmformerError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  constructor(message: string, where: { file?: string; line?: number; column?: number } = {}) {
    const pos = [
      where.file,
      where.line !== undefined ? `line ${where.line}` : "",
      where.column !== undefined ? `column ${where.column}` : "",
    ]
      .filter(Boolean)
      .join(":");
    super("parse", pos ? `${pos}: ${message}` : message);
    this.name = "ParseError";
    this.file = where.file;
    this.line = where.line;
  }
}

/** The operation was cancelled through an `AbortSignal`. */
export class AbortError extends WasmformerError {
  constructor(message = "operation aborted") {
    super("abort", message);
    this.name = "AbortError";
  }
}

/** A model (or other object owning wasm memory) was used after `dispose()`. */
export class DisposedError extends WasmformerError {
  constructor(what: string) {
    super("disposed", `${what} has been disposed: create a new one to go on`);
    this.name = "DisposedError";
  }
}

/**
 * A call needs state that another call in flight on the same object holds (for example a
 * synchronous `forward()` while a `generate()` of the same model is between two steps), and neither
 * waiting nor a state of its own is possible. Nothing was computed.
 */
export class BusyError extends WasmformerError {
  constructor(message: string) {
    super("busy", message);
    this.name = "BusyError";
  }
}

/**
 * A model file could not be downloaded: an HTTP error other than 404 (`status`), or a network
 * failure (`status` undefined). A 404 is not an error: the file is absent.
 */
export class DownloadError extends WasmformerError {
  readonly url: string;
  readonly status: number | undefined;
  constructor(message: string, url: string, status?: number, options?: { cause?: unknown }) {
    super("download", message, options);
    this.name = "DownloadError";
    this.url = url;
    this.status = status;
  }
}
