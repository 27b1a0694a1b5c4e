//! One wasmtime engine per node: compiling (cached by content hash, a
//! bounded LRU), and running one WASI preview 1 command to its end under
//! its [`Limits`].
//!
//! How each limit holds against hostile code:
//! - CPU: fuel. Every instruction costs fuel; at zero the module traps.
//! - Wall time and cancellation: epoch interruption. While any run is in
//!   progress, a ticker thread advances the engine's epoch every
//!   [`TICK_MS`]; each tick the store's callback checks the attempt's
//!   cancel flag and its wall time.
//! - Memory: a resource limiter that refuses growth (and so also a module
//!   that declares too much memory up front) and records that it did.
//! - Output: stdout and stderr are bounded in-memory pipes; a write past
//!   the bound traps the module.
//! - Reach: no preopened directories, no sockets, no host environment or
//!   arguments: the module sees what the job gives and nothing else.
//!
//! Everything here blocks: call it from a blocking thread, never from an
//! async worker.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lru::LruCache;
use thiserror::Error;
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::limits::{verdict, Ceilings, Failure, Limits, Observed, TrapKind};
use crate::output::BoundedOutput;

/// How often the epoch advances: the granularity of wall time and cancel.
pub const TICK_MS: u64 = 10;

/// Why the sandbox could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The engine or the WASI linker could not be built.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The epoch ticker thread could not start.
    #[error("wasm epoch ticker: {0}")]
    Ticker(#[from] std::io::Error),
}

/// A module compiled for this node's engine, with its content hash.
#[derive(Clone)]
pub struct Compiled {
    /// BLAKE3 of the module's bytes, hex.
    pub hash: String,
    module: Module,
}

/// A run that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// What the module wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
    /// Fuel it burned.
    pub fuel_used: u64,
}

/// A run that failed, with what the module had written to stderr.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{failure}")]
pub struct RunError {
    /// Why.
    pub failure: Failure,
    /// Its stderr up to the failure.
    pub stderr: Vec<u8>,
}

/// Per-store state: WASI, and what the limiter saw.
struct RunState {
    wasi: WasiP1Ctx,
    guard: Guard,
}

/// The resource limiter of one run.
struct Guard {
    memory_bytes: usize,
    table_elements: usize,
    refused: bool,
}

impl ResourceLimiter for Guard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.table_elements;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

/// Most table elements a module may hold (function tables of real
/// programs are a few thousand).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Advances the engine's epoch while runs are active, until dropped. An
/// idle node's ticker sleeps on a condition variable instead of waking a
/// hundred times a second.
struct Ticker {
    shared: Arc<TickerState>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct TickerState {
    /// Runs in progress, and whether the ticker should end.
    inner: Mutex<(usize, bool)>,
    wake: Condvar,
}

impl TickerState {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One run in progress; the ticker runs while any exists.
struct Active<'a>(&'a TickerState);

impl<'a> Active<'a> {
    fn begin(state: &'a TickerState) -> Self {
        state.lock().0 += 1;
        state.wake.notify_one();
        Self(state)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.lock().0 -= 1;
    }
}

impl Ticker {
    fn start(engine: Engine) -> Result<Self, std::io::Error> {
        let shared = Arc::new(TickerState::default());
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("hypha-wasm-epoch".into())
            .spawn(move || loop {
                {
                    let mut guard = state.lock();
                    while guard.0 == 0 && !guard.1 {
                        guard = state
                            .wake
                            .wait(guard)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    if guard.1 {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(TICK_MS));
                engine.increment_epoch();
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.lock().1 = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The node's sandbox: one engine, one linker, one module cache.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Mutex<LruCache<String, Compiled>>,
    ceilings: Ceilings,
    ticker: Ticker,
}

impl WasmRuntime {
    /// A sandbox with `ceilings`, caching at most `cache_modules` compiled
    /// modules.
    pub fn new(ceilings: Ceilings, cache_modules: usize) -> Result<Self, StartError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| StartError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |s: &mut RunState| &mut s.wasi)
            .map_err(|e| StartError::Engine(e.to_string()))?;
        let capacity = NonZeroUsize::new(cache_modules).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            ticker: Ticker::start(engine.clone())?,
            engine,
            linker,
            cache: Mutex::new(LruCache::new(capacity)),
            ceilings,
        })
    }

    /// This node's ceilings.
    pub fn ceilings(&self) -> &Ceilings {
        &self.ceilings
    }

    /// The BLAKE3 hash a module's bytes are cached and pinned by.
    pub fn hash(bytes: &[u8]) -> String {
        blake3::hash(bytes).to_hex().to_string()
    }

    /// The module with content hash `hash`, if this node has it compiled.
    /// Counts hits only: a miss is followed by [`WasmRuntime::compile`],
    /// which counts it, so one lookup is never counted twice.
    pub fn cached(&self, hash: &str) -> Option<Compiled> {
        let hit = self.lock_cache().get(hash).cloned();
        if hit.is_some() {
            metrics::counter!("hypha_wasm_compile_cache_total", "result" => "hit").increment(1);
        }
        hit
    }

    /// Compile `bytes` (binary or text format), or take it from the cache.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, Failure> {
        let hash = Self::hash(bytes);
        if let Some(hit) = self.lock_cache().get(&hash).cloned() {
            metrics::counter!("hypha_wasm_compile_cache_total", "result" => "hit").increment(1);
            return Ok(hit);
        }
        metrics::counter!("hypha_wasm_compile_cache_total", "result" => "miss").increment(1);
        let started = Instant::now();
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| Failure::InvalidModule(format!("{e:#}")))?;
        metrics::histogram!("hypha_wasm_compile_seconds").record(started.elapsed().as_secs_f64());
        let compiled = Compiled { hash, module };
        self.lock_cache()
            .put(compiled.hash.clone(), compiled.clone());
        Ok(compiled)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, LruCache<String, Compiled>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `module` as a command: `stdin` is its input, `args` its
    /// arguments after the program name, `env` its whole environment.
    /// Stops within a tick of `cancel` being set.
    pub fn run(
        &self,
        module: &Compiled,
        stdin: Vec<u8>,
        args: &[String],
        env: &[(String, String)],
        limits: &Limits,
        cancel: &Arc<AtomicBool>,
    ) -> Result<RunOutput, RunError> {
        let stdout = BoundedOutput::new(limits.output_bytes);
        let stderr = BoundedOutput::new(limits.stderr_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(&module.hash)
            .args(args)
            .envs(env);
        let state = RunState {
            wasi: wasi.build_p1(),
            guard: Guard {
                memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                table_elements: MAX_TABLE_ELEMENTS,
                refused: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.guard);
        let timed_out = Arc::new(AtomicBool::new(false));
        self.arm(&mut store, limits, cancel, &timed_out)
            .map_err(|failure| RunError {
                failure,
                stderr: Vec::new(),
            })?;
        let started = Instant::now();
        let active = Active::begin(&self.ticker.shared);
        let result = self.start(&mut store, module);
        drop(active);
        metrics::histogram!("hypha_wasm_run_seconds").record(started.elapsed().as_secs_f64());
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        metrics::counter!("hypha_wasm_fuel_used_total").increment(fuel_used);
        let mut seen = observe(
            result,
            store.data().guard.refused,
            timed_out.load(Ordering::Relaxed),
            cancel.load(Ordering::Relaxed),
        );
        seen.output_overflow = stdout.overflowed() || stderr.overflowed();
        let stderr = stderr.contents();
        match verdict(&seen, limits) {
            Ok(()) => Ok(RunOutput {
                stdout: stdout.contents(),
                stderr,
                fuel_used,
            }),
            Err(failure) => {
                metrics::counter!("hypha_wasm_failures_total", "reason" => failure.code())
                    .increment(1);
                Err(RunError { failure, stderr })
            }
        }
    }

    /// Fuel, and the epoch callback that enforces wall time and cancel.
    fn arm(
        &self,
        store: &mut Store<RunState>,
        limits: &Limits,
        cancel: &Arc<AtomicBool>,
        timed_out: &Arc<AtomicBool>,
    ) -> Result<(), Failure> {
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Failure::Host(e.to_string()))?;
        store.set_epoch_deadline(1);
        let ticks_allowed = limits.wall_ms.div_ceil(TICK_MS);
        let (cancel, timed_out) = (cancel.clone(), timed_out.clone());
        let mut ticks = 0u64;
        store.epoch_deadline_callback(move |_| {
            ticks += 1;
            if cancel.load(Ordering::Relaxed) {
                return Ok(UpdateDeadline::Interrupt);
            }
            if ticks >= ticks_allowed {
                timed_out.store(true, Ordering::Relaxed);
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(())
    }

    /// Instantiate and call `_start`; instantiation failures that are the
    /// module's (imports the sandbox does not give) are link errors.
    fn start(&self, store: &mut Store<RunState>, module: &Compiled) -> Result<(), Ended> {
        let started = Instant::now();
        let instance = self
            .linker
            .instantiate(&mut *store, &module.module)
            .map_err(Ended::Instantiate)?;
        metrics::histogram!("hypha_wasm_instantiate_seconds")
            .record(started.elapsed().as_secs_f64());
        let entry = instance
            .get_typed_func::<(), ()>(&mut *store, "_start")
            .map_err(|e| Ended::NoEntry(e.to_string()))?;
        entry.call(&mut *store, ()).map_err(Ended::Run)
    }
}

/// How a run did not return normally.
enum Ended {
    Instantiate(wasmtime::Error),
    NoEntry(String),
    Run(wasmtime::Error),
}

/// What a run's result and flags say, for [`verdict`].
fn observe(
    result: Result<(), Ended>,
    memory_refused: bool,
    timed_out: bool,
    cancelled: bool,
) -> Observed {
    let mut seen = Observed {
        memory_refused,
        timed_out,
        cancelled,
        ..Observed::default()
    };
    let error = match result {
        Ok(()) => return seen,
        Err(Ended::NoEntry(why)) => {
            seen.trap = Some(TrapKind::Other(format!("no `_start` command entry: {why}")));
            return seen;
        }
        Err(Ended::Instantiate(e)) if memory_refused => {
            seen.other = Some(format!("{e:#}"));
            return seen;
        }
        Err(Ended::Instantiate(e)) => {
            seen.link_error = Some(format!("{e:#}"));
            return seen;
        }
        Err(Ended::Run(e)) => e,
    };
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        seen.exit_code = Some(exit.0);
    } else if let Some(trap) = error.downcast_ref::<Trap>() {
        seen.trap = Some(match trap {
            Trap::OutOfFuel => TrapKind::OutOfFuel,
            Trap::Interrupt => TrapKind::Interrupt,
            other => TrapKind::Other(other.to_string()),
        });
    } else {
        // A WASI call that failed the module (bad arguments, an output
        // past its bound): the run ended inside the module's call.
        seen.trap = Some(TrapKind::Other(format!("{error:#}")));
    }
    seen
}

#[cfg(test)]
mod tests;
