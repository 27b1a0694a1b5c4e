//! Fan-out of one WebAssembly module over stored files (`POST
//! /v1/jobs/map`, `hypha jobs map`): which files are inputs, and the job
//! each one gets. Pure. A job's idempotency key is the module's content
//! hash and the input's name, so mapping again submits only what is not
//! there yet, and a changed module is new work.

use std::collections::BTreeMap;

use crate::chain::OUT_ARG;
use crate::job::{Constraints, JobSpec, Payload, Step};

/// Most inputs one fan-out takes; a larger set is mapped prefix by prefix.
pub const MAX_MAP_INPUTS: usize = 10_000;

/// What every job of a fan-out shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPlan {
    /// Queue.
    pub queue: String,
    /// The module's file name.
    pub module: String,
    /// The module's BLAKE3 hash (hex), read when the fan-out starts.
    pub module_hash: String,
    /// Inputs are the files whose names start with this.
    pub prefix: String,
    /// Results are stored as files: `out` + the input's name after
    /// `prefix`. `None`: each result stays in its job's record.
    pub out: Option<String>,
    /// Further job arguments (limits, `argN`, `env.NAME`).
    pub args: BTreeMap<String, String>,
    /// Priority of each job.
    pub priority: i32,
    /// Attempts of each job.
    pub max_attempts: u32,
    /// Timeout of each attempt.
    pub timeout_ms: u64,
    /// Where the jobs may run.
    pub constraints: Constraints,
    /// Follow-up steps of each job.
    pub then: Vec<Step>,
}

impl MapPlan {
    /// Whether the stored file `name` is an input: under the prefix, and
    /// not a result of this fan-out (an `out` inside the prefix).
    pub fn is_input(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
            && self
                .out
                .as_deref()
                .is_none_or(|out| out.is_empty() || !name.starts_with(out))
    }

    /// The idempotency key of the job over `input`.
    pub fn key(&self, input: &str) -> String {
        let hash = &self.module_hash[..self.module_hash.len().min(32)];
        format!("map:{hash}:{input}")
    }

    /// The file the result over `input` is stored as, if results are files.
    pub fn out_name(&self, input: &str) -> Option<String> {
        let out = self.out.as_ref()?;
        let rest = input.strip_prefix(&self.prefix).unwrap_or(input);
        Some(format!("{out}{rest}"))
    }

    /// The job over `input`.
    pub fn spec(&self, input: &str) -> JobSpec {
        let mut args = self.args.clone();
        args.insert("module".into(), self.module.clone());
        if let Some(out) = self.out_name(input) {
            args.insert(OUT_ARG.into(), out);
        }
        JobSpec {
            queue: self.queue.clone(),
            kind: "wasm".into(),
            payload: Payload::File(input.to_owned()),
            args,
            idempotency_key: Some(self.key(input)),
            priority: self.priority,
            max_attempts: self.max_attempts,
            timeout_ms: self.timeout_ms,
            constraints: self.constraints.clone(),
            then: self.then.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(out: Option<&str>) -> MapPlan {
        MapPlan {
            queue: "map".into(),
            module: "apps/wc.wasm".into(),
            module_hash: "ab".repeat(32),
            prefix: "photos/".into(),
            out: out.map(str::to_owned),
            args: BTreeMap::from([("fuel".to_string(), "1000".to_string())]),
            priority: 0,
            max_attempts: 3,
            timeout_ms: 1_000,
            constraints: Constraints::default(),
            then: Vec::new(),
        }
    }

    #[test]
    fn each_input_gets_one_stable_job() {
        let p = plan(Some("thumbs/"));
        let spec = p.spec("photos/a/1.jpg");
        assert!(spec.validate().is_ok());
        assert_eq!(spec.payload, Payload::File("photos/a/1.jpg".into()));
        assert_eq!(spec.args["out"], "thumbs/a/1.jpg");
        assert_eq!(spec.args["module"], "apps/wc.wasm");
        assert_eq!(spec.args["fuel"], "1000");
        assert_eq!(p.spec("photos/a/1.jpg"), spec, "a re-run is the same job");
        assert_ne!(p.key("photos/a/1.jpg"), p.key("photos/a/2.jpg"));
        let mut changed = p.clone();
        changed.module_hash = "cd".repeat(32);
        assert_ne!(changed.key("photos/a/1.jpg"), p.key("photos/a/1.jpg"));
        assert!(!plan(None).spec("photos/x").args.contains_key("out"));
    }

    #[test]
    fn results_inside_the_prefix_are_not_inputs() {
        let p = plan(Some("photos/thumbs/"));
        assert!(p.is_input("photos/a.jpg"));
        assert!(!p.is_input("photos/thumbs/a.jpg"));
        assert!(!p.is_input("other/a.jpg"));
        assert!(plan(None).is_input("photos/thumbs/a.jpg"));
    }
}
