//! The `wasm` job kind: a WASI preview 1 command module, stored as a file,
//! run in the node's sandbox ([`hypha_wasm`]) with the job's payload as
//! stdin; its stdout is the job's result.
//!
//! A job names its module and the module's command line in its arguments:
//! - `module`: the stored file holding the module (binary or text format),
//!   pinned at submit: the node that takes the job compiles the module (a
//!   module that does not validate is refused with 400) and records its
//!   content hash as `module_hash`; a worker that has that hash compiled
//!   runs it without reading the file, and one that reads a file whose
//!   content changed since refuses to run the new content;
//! - `arg1`, `arg2`, …: the module's arguments, in that order (the
//!   program name, `argv[0]`, is the module's hash);
//! - `env.NAME`: the variable `NAME` of its environment (and nothing else);
//! - `out`: store stdout as this file (acknowledged at W before the attempt
//!   ends); the job's result is then `{"stored": out, "bytes": n}`;
//! - `fuel`, `memory_bytes`, `output_bytes`, `wall_ms`: its limits
//!   ([`hypha_wasm::limits`]), each at most the node's ceiling.
//!
//! A failed attempt's error starts with its reason (`cpu_limit`,
//! `memory_limit`, `trap`, …) and ends with the tail of its stderr.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::handler::{JobError, JobHandler, JobInput};
use crate::job::MAX_INLINE_BYTES;
use hypha_wasm::{Compiled, Limits, RunError, WasmRuntime};

/// Largest module file a job may name.
pub const MAX_MODULE_BYTES: usize = 64 << 20;
/// Largest input a module is given on stdin.
pub const MAX_STDIN_BYTES: usize = 64 << 20;
/// Stderr bytes quoted in a failed attempt's error.
const STDERR_TAIL_BYTES: usize = 1024;
/// The argument the submit pins the module's content hash in.
pub const MODULE_HASH_ARG: &str = "module_hash";
pub use crate::chain::OUT_ARG;

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The `wasm` kind, over one node's sandbox.
pub struct WasmKind {
    runtime: Arc<WasmRuntime>,
}

impl WasmKind {
    /// The kind over `runtime`.
    pub fn new(runtime: Arc<WasmRuntime>) -> Self {
        Self { runtime }
    }
}

/// Sets the attempt's cancel flag when the attempt's future is dropped
/// (timeout, cancel), so the module stops within an epoch tick.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The module's command line from the job's `argN` arguments, in order.
pub fn module_args(args: &BTreeMap<String, String>) -> Result<Vec<String>, JobError> {
    let mut numbered = Vec::new();
    for (key, value) in args {
        let Some(n) = key.strip_prefix("arg") else {
            continue;
        };
        let n: usize = n
            .parse()
            .map_err(|_| JobError::BadInput(format!("argument `{key}`: expected arg1, arg2, …")))?;
        numbered.push((n, value.clone()));
    }
    numbered.sort();
    for (i, (n, _)) in numbered.iter().enumerate() {
        if *n != i + 1 {
            return Err(JobError::BadInput(format!(
                "module arguments must be arg1..arg{}, without gaps",
                numbered.len()
            )));
        }
    }
    Ok(numbered.into_iter().map(|(_, v)| v).collect())
}

/// The module's environment from the job's `env.NAME` arguments.
pub fn module_env(args: &BTreeMap<String, String>) -> Vec<(String, String)> {
    args.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("env.")?.to_owned(), v.clone())))
        .collect()
}

/// A failed run as the job's error: the reason, then the stderr tail.
fn failed(err: RunError) -> JobError {
    let start = err.stderr.len().saturating_sub(STDERR_TAIL_BYTES);
    let tail = String::from_utf8_lossy(&err.stderr[start..]);
    let tail = tail.trim();
    if tail.is_empty() {
        JobError::Failed(err.failure.to_string())
    } else {
        JobError::Failed(format!("{}; stderr: {tail}", err.failure))
    }
}

impl WasmKind {
    /// The job's module compiled: from the cache by its pinned hash, else
    /// read from its file (which must still hold the pinned content).
    async fn module(&self, input: &JobInput) -> Result<Compiled, JobError> {
        let pinned = input.spec.args.get(MODULE_HASH_ARG);
        if let Some(hit) = pinned.and_then(|hash| self.runtime.cached(hash)) {
            return Ok(hit);
        }
        let bytes = input
            .read_file(input.arg("module")?, MAX_MODULE_BYTES)
            .await?;
        if let Some(pinned) = pinned {
            let stored = WasmRuntime::hash(&bytes);
            if &stored != pinned {
                return Err(JobError::BadInput(format!(
                    "the module file changed since submit: pinned {pinned}, now {stored}"
                )));
            }
        }
        self.compile(bytes).await
    }

    /// Compile on a blocking thread; a module that does not validate is
    /// bad input.
    async fn compile(&self, bytes: Vec<u8>) -> Result<Compiled, JobError> {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.compile(&bytes))
            .await
            .map_err(|e| JobError::Failed(format!("host_error: the compile thread failed: {e}")))?
            .map_err(|failure| JobError::BadInput(failure.to_string()))
    }

    /// The job's limits; a result kept in the record (no `out`) holds at
    /// most [`MAX_INLINE_BYTES`] of stdout, whatever the ceiling.
    fn limits(&self, spec: &crate::job::JobSpec) -> Result<Limits, JobError> {
        let mut limits = Limits::for_job(&spec.args, spec.timeout_ms, self.runtime.ceilings())
            .map_err(|e| JobError::BadInput(e.to_string()))?;
        if !spec.args.contains_key(OUT_ARG) {
            limits.output_bytes = limits.output_bytes.min(MAX_INLINE_BYTES);
        }
        Ok(limits)
    }
}

#[async_trait]
impl JobHandler for WasmKind {
    /// Refuse what cannot run (limits, arguments, a module that does not
    /// validate) and pin the module's content hash.
    async fn prepare(&self, job: &mut JobInput) -> Result<(), JobError> {
        self.limits(&job.spec)?;
        module_args(&job.spec.args)?;
        let bytes = job.read_file(job.arg("module")?, MAX_MODULE_BYTES).await?;
        let compiled = self.compile(bytes).await?;
        job.spec.args.insert(MODULE_HASH_ARG.into(), compiled.hash);
        Ok(())
    }

    async fn run(&self, input: JobInput) -> Result<Vec<u8>, JobError> {
        let limits = self.limits(&input.spec)?;
        let args = module_args(&input.spec.args)?;
        let env = module_env(&input.spec.args);
        let compiled = self.module(&input).await?;
        let stdin = input.read_payload(MAX_STDIN_BYTES).await?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _stop = CancelOnDrop(cancel.clone());
        let runtime = self.runtime.clone();
        // Running is CPU-bound: off the async workers.
        let ran = tokio::task::spawn_blocking(move || {
            runtime.run(&compiled, stdin, &args, &env, &limits, &cancel)
        })
        .await
        .map_err(|e| JobError::Failed(format!("host_error: the sandbox thread failed: {e}")))?;
        let out = ran.map_err(|e| {
            input.log().keep(&e.stderr);
            failed(e)
        })?;
        input.log().keep(&out.stderr);
        if let Some(name) = input.spec.args.get(OUT_ARG) {
            let bytes = out.stdout.len();
            input.store_file(name, out.stdout).await?;
            return Ok(
                format!(r#"{{"stored":{},"bytes":{bytes}}}"#, json_string(name)).into_bytes(),
            );
        }
        if out.stdout.len() > MAX_INLINE_BYTES {
            return Err(JobError::Failed(format!(
                "output_limit: results are at most {MAX_INLINE_BYTES} bytes"
            )));
        }
        Ok(out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
        pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).into()
    }

    #[test]
    fn module_arguments_come_in_order_without_gaps() {
        let a = args([
            ("arg2", "b"),
            ("arg1", "a"),
            ("arg10", "j"),
            ("module", "m"),
        ]);
        assert!(module_args(&a).is_err(), "arg3..arg9 are missing");
        let a = args([("arg2", "b"), ("arg1", "a"), ("fuel", "5")]);
        assert_eq!(module_args(&a).unwrap(), ["a", "b"]);
        assert!(module_args(&args([("argv", "x")])).is_err());
        assert!(module_args(&args([])).unwrap().is_empty());
    }

    #[test]
    fn the_environment_is_only_what_the_job_names() {
        let a = args([("env.LANG", "C"), ("module", "m"), ("environment", "x")]);
        assert_eq!(module_env(&a), [("LANG".to_string(), "C".to_string())]);
    }
}
