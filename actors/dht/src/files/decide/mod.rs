//! The file coordinator's decisions, without I/O or a clock of their own:
//! [`call`] paces one quorum call (whom to ask, when, when it is over)
//! from answers and the time passed in; [`verdict`] turns the answers
//! into the outcome (acknowledged, found, degraded, repaired, 503, 404)
//! and builds the versions written. The coordinator and the quorum shell
//! carry the effects out. Every rule of docs/dht.md, "Files", that the
//! coordinator decides has a test of its own here.

pub mod call;
pub mod verdict;

#[cfg(test)]
mod tests;
