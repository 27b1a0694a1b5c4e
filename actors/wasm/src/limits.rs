//! Limits and verdicts, without wasmtime: what a job may use (its own
//! settings under the node's ceilings), and what a run that ended means.
//!
//! A job names its limits as arguments (`fuel`, `memory_bytes`,
//! `output_bytes`, `wall_ms`); any it leaves out get the node's ceiling,
//! and one above the ceiling is refused rather than lowered, so a job
//! never runs under limits it did not expect.

use std::collections::BTreeMap;

use thiserror::Error;

/// The node-wide ceilings (`[work.wasm]` in the node's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// Most fuel (roughly, WebAssembly instructions) one attempt may burn.
    pub fuel: u64,
    /// Longest wall time of one attempt.
    pub wall_ms: u64,
    /// Most linear memory one attempt may hold.
    pub memory_bytes: u64,
    /// Most bytes one attempt may write to stdout (the `wasm` kind holds
    /// a result kept in the job's record to 256 KiB, one stored as a file
    /// to this).
    pub output_bytes: usize,
    /// Most bytes of stderr kept; writing more fails the attempt.
    pub stderr_bytes: usize,
}

impl Default for Ceilings {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            wall_ms: 60_000,
            memory_bytes: 256 << 20,
            output_bytes: 64 << 20,
            stderr_bytes: 16 << 10,
        }
    }
}

/// The limits one attempt runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for the attempt.
    pub fuel: u64,
    /// Wall time for the attempt.
    pub wall_ms: u64,
    /// Linear memory, all memories together.
    pub memory_bytes: u64,
    /// Stdout bytes.
    pub output_bytes: usize,
    /// Stderr bytes.
    pub stderr_bytes: usize,
}

/// A job's limit argument that cannot be honoured.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LimitError {
    /// Not a whole number.
    #[error("argument `{name}`: `{value}` is not a whole number")]
    NotANumber {
        /// The argument.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// Above what this node allows.
    #[error("argument `{name}`: {value} is above this node's ceiling of {ceiling}")]
    AboveCeiling {
        /// The argument.
        name: &'static str,
        /// What was asked.
        value: u64,
        /// The node's ceiling.
        ceiling: u64,
    },
    /// Zero leaves nothing to run with.
    #[error("argument `{name}` must be above 0")]
    Zero {
        /// The argument.
        name: &'static str,
    },
}

/// The job arguments that set limits; every other argument is the module's.
pub const LIMIT_ARGS: [&str; 4] = ["fuel", "memory_bytes", "output_bytes", "wall_ms"];

impl Limits {
    /// The limits for a job with `args` and `timeout_ms` on a node with
    /// `ceilings`. The wall time is also bounded by the job's timeout.
    pub fn for_job(
        args: &BTreeMap<String, String>,
        timeout_ms: u64,
        ceilings: &Ceilings,
    ) -> Result<Self, LimitError> {
        let pick = |name: &'static str, ceiling: u64| -> Result<u64, LimitError> {
            let Some(raw) = args.get(name) else {
                return Ok(ceiling);
            };
            let value = raw
                .trim()
                .parse::<u64>()
                .map_err(|_| LimitError::NotANumber {
                    name,
                    value: raw.clone(),
                })?;
            match value {
                0 => Err(LimitError::Zero { name }),
                v if v > ceiling => Err(LimitError::AboveCeiling {
                    name,
                    value: v,
                    ceiling,
                }),
                v => Ok(v),
            }
        };
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let output = pick("output_bytes", as_u64(ceilings.output_bytes))?;
        Ok(Self {
            fuel: pick("fuel", ceilings.fuel)?,
            wall_ms: pick("wall_ms", ceilings.wall_ms)?.min(timeout_ms.max(1)),
            memory_bytes: pick("memory_bytes", ceilings.memory_bytes)?,
            output_bytes: usize::try_from(output).unwrap_or(usize::MAX),
            stderr_bytes: ceilings.stderr_bytes,
        })
    }
}

/// How a trap ended a run, as far as the verdict cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapKind {
    /// The fuel ran out.
    OutOfFuel,
    /// The epoch deadline passed (wall time or cancel; see [`Observed`]).
    Interrupt,
    /// Any other trap: unreachable, out-of-bounds access, stack exhausted…
    Other(String),
}

/// What the runtime saw of one run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The module exited through `proc_exit` with this code.
    pub exit_code: Option<i32>,
    /// It trapped.
    pub trap: Option<TrapKind>,
    /// A memory or table growth was refused by the limiter.
    pub memory_refused: bool,
    /// A write went beyond the stdout or stderr bound.
    pub output_overflow: bool,
    /// The wall time ran out.
    pub timed_out: bool,
    /// The attempt was cancelled (its job timed out or was cancelled).
    pub cancelled: bool,
    /// It could not be linked: it imports what the sandbox does not give.
    pub link_error: Option<String>,
    /// Any other error from the host side.
    pub other: Option<String>,
}

/// Why an attempt failed; [`Failure::code`] is the stable name.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Failure {
    /// The module does not validate or compile.
    #[error("invalid_module: {0}")]
    InvalidModule(String),
    /// It imports something the sandbox does not give.
    #[error("link_error: {0}")]
    Link(String),
    /// The fuel ran out.
    #[error("cpu_limit: used all {fuel} fuel")]
    CpuLimit {
        /// The attempt's fuel.
        fuel: u64,
    },
    /// The wall time ran out.
    #[error("time_limit: still running after {wall_ms} ms")]
    TimeLimit {
        /// The attempt's wall time.
        wall_ms: u64,
    },
    /// It asked for more memory than allowed.
    #[error("memory_limit: asked for more than {bytes} bytes of memory")]
    MemoryLimit {
        /// The attempt's memory limit.
        bytes: u64,
    },
    /// It wrote more than allowed.
    #[error("output_limit: wrote more than {bytes} bytes")]
    OutputLimit {
        /// The attempt's stdout limit.
        bytes: usize,
    },
    /// It trapped.
    #[error("trap: {0}")]
    Trap(String),
    /// It exited with a non-zero code.
    #[error("exit: code {0}")]
    Exit(i32),
    /// Stopped because its job timed out or was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The host failed (not the module's doing).
    #[error("host_error: {0}")]
    Host(String),
}

impl Failure {
    /// The reason's stable name, for errors, metrics and the console.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::InvalidModule(_) => "invalid_module",
            Failure::Link(_) => "link_error",
            Failure::CpuLimit { .. } => "cpu_limit",
            Failure::TimeLimit { .. } => "time_limit",
            Failure::MemoryLimit { .. } => "memory_limit",
            Failure::OutputLimit { .. } => "output_limit",
            Failure::Trap(_) => "trap",
            Failure::Exit(_) => "exit",
            Failure::Cancelled => "cancelled",
            Failure::Host(_) => "host_error",
        }
    }
}

/// The verdict on a run that ended as `seen` under `limits`: `Ok` when it
/// returned from `_start` or exited with 0.
///
/// A limit that was hit wins over how the module reacted to it: a guest
/// whose `memory.grow` was refused may trap or exit on its own, and the
/// reason worth reporting is still the limit.
pub fn verdict(seen: &Observed, limits: &Limits) -> Result<(), Failure> {
    if seen.cancelled {
        return Err(Failure::Cancelled);
    }
    if seen.memory_refused {
        return Err(Failure::MemoryLimit {
            bytes: limits.memory_bytes,
        });
    }
    if seen.output_overflow {
        return Err(Failure::OutputLimit {
            bytes: limits.output_bytes,
        });
    }
    if let Some(why) = &seen.link_error {
        return Err(Failure::Link(why.clone()));
    }
    match (&seen.trap, seen.exit_code, &seen.other) {
        (Some(TrapKind::OutOfFuel), _, _) => Err(Failure::CpuLimit { fuel: limits.fuel }),
        (Some(TrapKind::Interrupt), _, _) if seen.timed_out => Err(Failure::TimeLimit {
            wall_ms: limits.wall_ms,
        }),
        (Some(TrapKind::Interrupt), _, _) => Err(Failure::Cancelled),
        (Some(TrapKind::Other(why)), _, _) => Err(Failure::Trap(why.clone())),
        (None, Some(0), _) => Ok(()),
        (None, Some(code), _) => Err(Failure::Exit(code)),
        (None, None, Some(_)) if seen.timed_out => Err(Failure::TimeLimit {
            wall_ms: limits.wall_ms,
        }),
        (None, None, Some(why)) => Err(Failure::Host(why.clone())),
        (None, None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn limits() -> Limits {
        Limits::for_job(&BTreeMap::new(), 60_000, &Ceilings::default()).unwrap()
    }

    #[test]
    fn a_job_without_limits_gets_the_ceilings_and_its_timeout_bounds_the_wall() {
        let c = Ceilings::default();
        let l = Limits::for_job(&BTreeMap::new(), 5_000, &c).unwrap();
        assert_eq!(l.fuel, c.fuel);
        assert_eq!(l.memory_bytes, c.memory_bytes);
        assert_eq!(l.output_bytes, c.output_bytes);
        assert_eq!(l.wall_ms, 5_000);
    }

    #[test]
    fn limits_above_the_ceiling_or_not_numbers_are_refused_with_their_name() {
        let c = Ceilings::default();
        let too_much = Limits::for_job(&args(&[("fuel", "99999999999999")]), 1, &c);
        assert!(matches!(
            too_much,
            Err(LimitError::AboveCeiling { name: "fuel", .. })
        ));
        let garbage = Limits::for_job(&args(&[("memory_bytes", "lots")]), 1, &c);
        assert!(matches!(
            garbage,
            Err(LimitError::NotANumber {
                name: "memory_bytes",
                ..
            })
        ));
        let zero = Limits::for_job(&args(&[("output_bytes", "0")]), 1, &c);
        assert_eq!(
            zero,
            Err(LimitError::Zero {
                name: "output_bytes"
            })
        );
        let fine = Limits::for_job(&args(&[("fuel", "1000"), ("wall_ms", "50")]), 60_000, &c);
        assert_eq!(fine.map(|l| (l.fuel, l.wall_ms)), Ok((1000, 50)));
    }

    #[test]
    fn a_hit_limit_is_the_reason_whatever_the_guest_did_next() {
        let l = limits();
        let grow_then_trap = Observed {
            memory_refused: true,
            trap: Some(TrapKind::Other("unreachable".into())),
            ..Observed::default()
        };
        assert_eq!(
            verdict(&grow_then_trap, &l).map_err(|f| f.code()),
            Err("memory_limit")
        );
        let overflow_then_exit = Observed {
            output_overflow: true,
            exit_code: Some(1),
            ..Observed::default()
        };
        assert_eq!(
            verdict(&overflow_then_exit, &l).map_err(|f| f.code()),
            Err("output_limit")
        );
    }

    #[test]
    fn traps_exits_and_interrupts_map_to_their_reasons() {
        let l = limits();
        let code = |seen: Observed| verdict(&seen, &l).map_err(|f| f.code());
        let fuel = Observed {
            trap: Some(TrapKind::OutOfFuel),
            ..Observed::default()
        };
        assert_eq!(code(fuel), Err("cpu_limit"));
        let wall = Observed {
            trap: Some(TrapKind::Interrupt),
            timed_out: true,
            ..Observed::default()
        };
        assert_eq!(code(wall), Err("time_limit"));
        let cancelled = Observed {
            trap: Some(TrapKind::Interrupt),
            cancelled: true,
            ..Observed::default()
        };
        assert_eq!(code(cancelled), Err("cancelled"));
        let exit0 = Observed {
            exit_code: Some(0),
            ..Observed::default()
        };
        assert_eq!(code(exit0), Ok(()));
        let exit3 = Observed {
            exit_code: Some(3),
            ..Observed::default()
        };
        assert_eq!(code(exit3), Err("exit"));
        assert_eq!(code(Observed::default()), Ok(()));
    }

    proptest! {
        /// Whatever else was seen, a cancelled run is reported as
        /// cancelled, and a run that hit no limit and did not trap or fail
        /// is judged by its exit code alone.
        #[test]
        fn cancel_wins_and_clean_runs_follow_their_exit_code(
            exit in proptest::option::of(-5i32..5),
            memory in any::<bool>(),
            output in any::<bool>(),
            timed_out in any::<bool>(),
        ) {
            let l = limits();
            let cancelled = Observed {
                exit_code: exit,
                memory_refused: memory,
                output_overflow: output,
                timed_out,
                cancelled: true,
                ..Observed::default()
            };
            prop_assert_eq!(verdict(&cancelled, &l), Err(Failure::Cancelled));
            let clean = Observed { exit_code: exit, ..Observed::default() };
            let expected = match exit {
                None | Some(0) => Ok(()),
                Some(code) => Err(Failure::Exit(code)),
            };
            prop_assert_eq!(verdict(&clean, &l), expected);
        }
    }
}
