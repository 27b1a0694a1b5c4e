//! Hypha's fault-injection harness: real node processes, a recorded
//! workload of file writes, reads, overwrites, deletes and job submits, a
//! nemesis applying a seeded fault schedule (kill -9, SIGSTOP, graceful
//! restart, actor kills, partitions, packet loss, a full disk, clock
//! skew, bit rot in a stopped node's store), and checkers that read
//! the healed cluster back against the history. `docs/chaos.md` lists the
//! scenarios, their pass criteria and run times.
//!
//! Pure parts: [`scenario`] (the schedule from a seed), [`check`] (the
//! invariants), [`report`], [`matrix`]. The rest drives processes and HTTP.

pub mod bitrot;
pub mod check;
pub mod clock;
pub mod cluster;
pub mod history;
pub mod matrix;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod scenario;
pub mod workload;

pub use run::{run, Namespace, RunArgs, RunResult};
