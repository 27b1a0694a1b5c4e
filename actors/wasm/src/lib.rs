//! The WebAssembly sandbox the `wasm` job kind runs user code in.
//!
//! A module is a WASI preview 1 *command*: its input is stdin, its result
//! is stdout, stderr is kept (bounded) for the job record, and it sees
//! the arguments and environment the job gives, nothing else: no
//! preopened directory, no sockets, no host environment.
//!
//! What this crate owns:
//! - [`limits`]: the limits a job asks for, checked against the node's
//!   ceilings, and the verdict on how a run ended (pure, no wasmtime);
//! - [`output`]: bounded stdout and stderr that trap on overflow;
//! - [`runtime`]: one wasmtime engine per node, the compiled-module cache
//!   (bounded LRU by content hash), the epoch ticker that enforces wall
//!   time and cancellation, and running one module to its end.
//!
//! Why wasmtime: the runtime Spin and wasmCloud build on, with fuel
//! metering, epoch interruption and a resource limiter, which are the three
//! mechanisms the limits need (docs/jobs.md, "WebAssembly jobs").

pub mod limits;
pub mod output;
pub mod runtime;

pub use limits::{Ceilings, Failure, Limits, Observed};
pub use runtime::{Compiled, RunError, RunOutput, WasmRuntime};
