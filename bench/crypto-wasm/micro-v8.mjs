// The filter's crypto steps (bench/src/steps.rs, compiled into autoid_bench_crypto.wasm) timed
// under V8, the engine Envoy embeds, through node's WASI. `autoid-bench micro-wasm` times the same
// module under wasmtime (Cranelift).
//
//   node bench/crypto-wasm/micro-v8.mjs target/wasm32-wasip1/wasm/autoid_bench_crypto.wasm [out.json]
//
// Prints µs per call as JSON. Each step runs 2000 times untimed first (V8 compiles wasm with
// Liftoff, then tiers hot functions up to TurboFan), then 2000 times timed.
import { readFileSync, writeFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

// Step::ALL's names, in order (bench/src/steps.rs); checked against the module below.
const NAMES = [
  'rsa_oaep_unwrap_2048', 'rsa_oaep_unwrap_3072', 'aes_256_gcm_open', 'sha256_intervals_64',
  'entropy_derive_64', 'split_offsets_64', 'split_digest_64', 'split_hkdf_aes_key_schedule',
  'split_aes_blocks_64_batched', 'split_aes_blocks_64_one_by_one', 'warm_verify',
  'split_session_id', 'split_file_reads_64', 'warm_verify_file_cached',
];
const SKIP = new Set(['rsa_oaep_unwrap_2048', 'rsa_oaep_unwrap_3072']); // seconds each in wasm
const RUNS = 2000;

const [wasmPath, outPath] = process.argv.slice(2);
if (!wasmPath) {
  console.error('usage: node micro-v8.mjs MODULE.wasm [OUT.json]');
  process.exit(2);
}
const wasi = new WASI({ version: 'preview1' });
const module = await WebAssembly.compile(readFileSync(wasmPath));
const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport });
wasi.initialize(instance);
const { bench_setup: setup, bench_run: run } = instance.exports;
if (setup() !== 0) throw new Error('bench_setup failed');
if (run(NAMES.length, 1) !== -1) throw new Error('the module has more steps than NAMES lists');

const results = { engine: `V8 ${process.versions.v8} (node ${process.version})`, runs: RUNS, us_per_call: {} };
for (const [id, name] of NAMES.entries()) {
  if (SKIP.has(name)) continue;
  if (run(id, RUNS) < 0) throw new Error(`step ${name} failed`);
  const start = process.hrtime.bigint();
  run(id, RUNS);
  const us = Number(process.hrtime.bigint() - start) / 1000 / RUNS;
  results.us_per_call[name] = Math.round(us * 1000) / 1000;
}
const text = JSON.stringify(results, null, 2);
console.log(text);
if (outPath) writeFileSync(outPath, text + '\n');
