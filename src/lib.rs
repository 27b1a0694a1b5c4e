//! The Hypha node: configuration, CLI, node assembly (the root supervision
//! tree), the admin HTTP surface and metrics.
//!
//! `hypha-supervisors` supplies the OTP behaviour; the domain actors live in
//! the crates under `actors/` (`hypha-core`, `hypha-store`, `hypha-cluster`,
//! `hypha-dht`, `hypha-work`); this crate wires them into one node
//! ([`node::start`]).

pub mod admin;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod dht;
mod durable_file;
pub mod generation;
pub mod gossip_keys;
pub mod identity;
pub mod launch;
pub mod node;
pub mod rolling;
pub mod s3;
pub mod secrets;
pub mod telemetry;
pub mod work;
