//! Bounded stdout and stderr for one run.
//!
//! Why not wasmtime-wasi's `MemoryOutputPipe`: once full it reports the
//! stream closed, so a module that ignores the error spins until its fuel
//! or wall time runs out and the run ends as `cpu_limit` or `time_limit`.
//! Here a write never waits for room, and the first write past the bound
//! traps the module at once and is recorded, so the attempt ends as
//! `output_limit` without matching an error message.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// The write permit handed out each time: a module never waits for room.
const PERMIT_BYTES: usize = 64 << 10;

/// An in-memory output that holds at most `capacity` bytes.
#[derive(Clone)]
pub struct BoundedOutput {
    capacity: usize,
    buffer: Arc<Mutex<Vec<u8>>>,
    overflowed: Arc<AtomicBool>,
}

impl BoundedOutput {
    /// An empty output bounded at `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            buffer: Arc::default(),
            overflowed: Arc::default(),
        }
    }

    /// What was written.
    pub fn contents(&self) -> Vec<u8> {
        self.buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a write went past the bound.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Append `bytes`, or record the overflow and refuse them whole.
    fn take(&self, bytes: &[u8]) -> Result<(), String> {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.len().saturating_add(bytes.len()) > self.capacity {
            self.overflowed.store(true, Ordering::Relaxed);
            return Err(format!("output past its bound of {} bytes", self.capacity));
        }
        buffer.extend_from_slice(bytes);
        Ok(())
    }
}

impl IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedOutput {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for BoundedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes).map_err(|why| StreamError::trap(&why))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT_BYTES)
    }
}

impl AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.take(buf).map(|()| buf.len()).map_err(io::Error::other))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_up_to_the_bound_are_kept_and_the_first_past_it_is_refused_whole() {
        let out = BoundedOutput::new(10);
        assert!(out.take(b"12345").is_ok());
        assert!(out.take(b"67890").is_ok());
        assert!(!out.overflowed());
        assert!(out.take(b"x").is_err());
        assert!(out.overflowed());
        assert_eq!(out.contents(), b"1234567890");
    }
}
