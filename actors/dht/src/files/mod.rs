//! Files over the DHT: the coordinator ([`Files`]) that any node runs for
//! the requests it receives — streaming uploads cut into content-defined
//! chunks, quorum writes, quorum reads with read repair, verified chunk
//! streaming, deletes as tombstones, cluster-wide listings, partition
//! snapshots for backups — and the
//! collector actor that removes unreferenced chunks and old tombstones.

pub mod cache;
mod collector;
mod coordinator;
mod decide;
mod error;
pub mod listing;
mod quorum;
pub mod snapshot;

pub use cache::{CachePolicy, CacheStats, ChunkCache};
pub use collector::{Collector, CollectorArgs, CollectorMessage};
pub use coordinator::{ByteRange, Files, FilesConfig, Opened, PutMeta, PutReport, ReadConsistency};
pub use error::FilesError;
pub use listing::{ListQuery, Page};
