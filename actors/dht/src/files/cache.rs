//! The edge chunk cache: chunks a node fetched from other nodes to serve
//! a read of a file it does not replicate, kept in memory within a byte
//! bound so that the next read of a hot file is served without a network
//! hop (docs/dht.md, "Edge cache"). Keyed by chunk hash, so an entry is
//! never stale: content addressing makes a hash name one byte string for
//! ever, and only verified bytes go in. Manifests are not cached — a read
//! still learns the file's current chunks by quorum.
//!
//! Eviction is `moka`'s (a well-kept concurrent cache with a byte
//! weigher): `lru` evicts the least recently used chunk; `lfu` is moka's
//! TinyLFU — a new chunk is admitted over the LRU victim only if a
//! count-min sketch says it is used more often, so a scan of cold chunks
//! does not flush a hot set. moka runs its housekeeping on the calling
//! thread (no background threads), amortised over reads and writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

/// Which chunk goes when the cache is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CachePolicy {
    /// Least recently used.
    Lru,
    /// Least frequently used (TinyLFU admission, LRU among the admitted).
    #[default]
    Lfu,
}

/// Counts since the node started.
#[derive(Debug, Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

/// What the cache holds and has done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// The policy.
    pub policy: CachePolicy,
    /// The byte bound (0: no cache).
    pub max_bytes: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Chunks held.
    pub entries: u64,
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that had to fetch the chunk.
    pub misses: u64,
    /// Chunks evicted for room.
    pub evictions: u64,
}

/// A node's edge chunk cache; cheap to clone (shared).
#[derive(Clone)]
pub struct ChunkCache {
    chunks: Option<Cache<[u8; 32], Arc<[u8]>>>,
    counts: Arc<Counts>,
    policy: CachePolicy,
    max_bytes: u64,
}

impl ChunkCache {
    /// A cache holding at most `max_bytes` of chunks (0: none at all).
    pub fn new(max_bytes: u64, policy: CachePolicy) -> Self {
        let counts = Arc::new(Counts::default());
        let chunks = (max_bytes > 0).then(|| {
            let evicted = counts.clone();
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, bytes: &Arc<[u8]>| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
                .eviction_policy(match policy {
                    CachePolicy::Lru => EvictionPolicy::lru(),
                    CachePolicy::Lfu => EvictionPolicy::tiny_lfu(),
                })
                .eviction_listener(move |_, _, cause| {
                    if cause == RemovalCause::Size {
                        evicted.evictions.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("hypha_cache_evictions_total").increment(1);
                    }
                })
                .build()
        });
        Self {
            chunks,
            counts,
            policy,
            max_bytes,
        }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.chunks.is_some()
    }

    /// The chunk `hash`, if held (a hit or a miss is counted).
    pub fn get(&self, hash: &[u8; 32]) -> Option<Vec<u8>> {
        let chunks = self.chunks.as_ref()?;
        match chunks.get(hash) {
            Some(bytes) => {
                self.counts.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hypha_cache_hits_total").increment(1);
                Some(bytes.to_vec())
            }
            None => {
                self.counts.misses.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hypha_cache_misses_total").increment(1);
                None
            }
        }
    }

    /// Keep `bytes`, which the caller verified hash to `hash`.
    pub fn insert(&self, hash: [u8; 32], bytes: &[u8]) {
        let Some(chunks) = &self.chunks else { return };
        chunks.insert(hash, Arc::from(bytes));
        self.publish();
    }

    /// Drop every chunk (`DELETE /v1/dht/cache`).
    pub fn clear(&self) {
        if let Some(chunks) = &self.chunks {
            chunks.invalidate_all();
            chunks.run_pending_tasks();
        }
        self.publish();
    }

    /// What it holds and has done (pending housekeeping run first, so the
    /// sizes are exact).
    pub fn stats(&self) -> CacheStats {
        if let Some(chunks) = &self.chunks {
            chunks.run_pending_tasks();
        }
        let (bytes, entries) = self.sizes();
        CacheStats {
            policy: self.policy,
            max_bytes: self.max_bytes,
            bytes,
            entries,
            hits: self.counts.hits.load(Ordering::Relaxed),
            misses: self.counts.misses.load(Ordering::Relaxed),
            evictions: self.counts.evictions.load(Ordering::Relaxed),
        }
    }

    fn sizes(&self) -> (u64, u64) {
        self.chunks
            .as_ref()
            .map_or((0, 0), |c| (c.weighted_size(), c.entry_count()))
    }

    fn publish(&self) {
        let (bytes, entries) = self.sizes();
        metrics::gauge!("hypha_cache_bytes").set(bytes as f64);
        metrics::gauge!("hypha_cache_entries").set(entries as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: u8, len: usize) -> ([u8; 32], Vec<u8>) {
        ([i; 32], vec![i; len])
    }

    #[test]
    fn a_held_chunk_is_a_hit_and_an_absent_one_a_miss() {
        let cache = ChunkCache::new(1 << 20, CachePolicy::Lru);
        let (h, bytes) = chunk(1, 1000);
        assert_eq!(cache.get(&h), None);
        cache.insert(h, &bytes);
        assert_eq!(cache.get(&h), Some(bytes));
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.bytes), (1, 1, 1, 1000));
        cache.clear();
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.get(&h), None);
    }

    #[test]
    fn the_byte_bound_holds_and_lru_evicts_the_least_recent() {
        let cache = ChunkCache::new(10_000, CachePolicy::Lru);
        for i in 0..10u8 {
            let (h, b) = chunk(i, 1_000);
            cache.insert(h, &b);
        }
        cache.stats();
        // Touch 0, then add one more: 1 (least recent) goes, 0 stays.
        assert!(cache.get(&[0; 32]).is_some());
        let (h, b) = chunk(10, 1_000);
        cache.insert(h, &b);
        let s = cache.stats();
        assert!(s.bytes <= 10_000, "{s:?}");
        assert!(s.evictions >= 1, "{s:?}");
        assert!(cache.get(&[0; 32]).is_some());
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn lfu_keeps_a_hot_set_through_a_scan_of_cold_chunks() {
        let cache = ChunkCache::new(10_000, CachePolicy::Lfu);
        for round in 0..20 {
            for i in 0..5u8 {
                let (h, b) = chunk(i, 1_000);
                if cache.get(&h).is_none() {
                    cache.insert(h, &b);
                }
            }
            if round == 0 {
                cache.stats();
            }
        }
        for i in 100..200u8 {
            let (h, b) = chunk(i, 1_000);
            cache.insert(h, &b);
        }
        cache.stats();
        let hot = (0..5u8).filter(|i| cache.get(&[*i; 32]).is_some()).count();
        assert_eq!(hot, 5, "{:?}", cache.stats());
        assert!(cache.stats().bytes <= 10_000);
    }

    #[test]
    fn a_zero_bound_is_no_cache() {
        let cache = ChunkCache::new(0, CachePolicy::Lfu);
        let (h, b) = chunk(1, 10);
        cache.insert(h, &b);
        assert!(!cache.enabled());
        assert_eq!(cache.get(&h), None);
        assert_eq!(cache.stats().misses, 0, "a disabled cache counts nothing");
    }
}
