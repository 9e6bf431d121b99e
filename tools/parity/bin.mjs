#!/usr/bin/env node
// pnpm parity <folder> [--filter <substring>] [--backend auto|ref|wasm-simd|wasm-relaxed] [--timeout <seconds>] [--kinds <module.mjs>]
import { main } from "./src/runner.mjs";

process.exitCode = await main(process.argv.slice(2));
