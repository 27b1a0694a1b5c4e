//! Content-defined chunking (FastCDC 2020) over a stream: bytes go in as
//! they arrive, chunks come out as soon as their cut point is known. Cut
//! points depend on content, not offsets, so an edit early in a file moves
//! only nearby boundaries and later chunks keep their hashes (new versions
//! of a file share most chunks with the old one).

use fastcdc::v2020::{cut, select_masks, Normalization};

/// Smallest chunk (except a file's last).
pub const MIN_CHUNK_BYTES: usize = 256 * 1024;
/// Target average chunk size.
pub const AVG_CHUNK_BYTES: usize = 512 * 1024;
/// Largest chunk: 1 MiB less 4 KiB, so that a chunk plus its RPC envelope
/// stays within the 1 MiB message limit.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024 - 4096;

/// A streaming chunker.
#[derive(Debug)]
pub struct Chunker {
    buffer: Vec<u8>,
    min: usize,
    avg: usize,
    max: usize,
    masks: (u64, u64),
}

impl Default for Chunker {
    fn default() -> Self {
        Self::with_sizes(MIN_CHUNK_BYTES, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES)
    }
}

impl Chunker {
    /// A chunker with explicit sizes (min ≤ avg ≤ max; FastCDC's bounds).
    pub fn with_sizes(min: usize, avg: usize, max: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(max * 2),
            min,
            avg,
            max,
            masks: select_masks(avg, Normalization::Level1),
        }
    }

    /// Add bytes; returns the chunks now complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        // A cut is final only once `max` bytes are buffered: with fewer,
        // more input could still move it.
        while self.buffer.len() >= self.max {
            out.push(self.cut_one());
        }
        out
    }

    /// The input ended: the remaining chunks.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while !self.buffer.is_empty() {
            out.push(self.cut_one());
        }
        out
    }

    fn cut_one(&mut self) -> Vec<u8> {
        let window = self.buffer.len().min(self.max);
        let (mask_s, mask_l) = self.masks;
        let (_, len) = cut(
            &self.buffer[..window],
            self.min,
            self.avg,
            self.max,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
        );
        let len = len.clamp(1, window);
        let rest = self.buffer.split_off(len);
        std::mem::replace(&mut self.buffer, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk_all(data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut c = Chunker::with_sizes(1024, 4096, 16 * 1024);
        let mut out = Vec::new();
        for part in data.chunks(piece.max(1)) {
            out.extend(c.push(part));
        }
        out.extend(c.finish());
        out
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    proptest! {
        #[test]
        fn chunks_rejoin_to_the_input_whatever_the_arrival_pattern(
            len in 0usize..200_000, seed in any::<u64>(), piece in 1usize..70_000,
        ) {
            let data = pseudo_random(len, seed);
            let chunks = chunk_all(&data, piece);
            prop_assert_eq!(chunks.concat(), data.clone());
            prop_assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 16 * 1024));
            // Boundaries depend on content only, not on how it arrived.
            prop_assert_eq!(chunks, chunk_all(&data, 200_000));
        }
    }

    #[test]
    fn an_early_edit_keeps_later_chunks() {
        let data = pseudo_random(400_000, 7);
        let mut edited = data.clone();
        edited.splice(100..100, [1u8, 2, 3]);
        let a = chunk_all(&data, 4096);
        let b = chunk_all(&edited, 4096);
        let shared = b.iter().filter(|c| a.contains(c)).count();
        assert!(shared * 10 >= a.len() * 8, "{shared} of {} shared", a.len());
    }

    #[test]
    fn default_chunks_fit_the_message_limit() {
        let mut c = Chunker::default();
        let data = pseudo_random(5 << 20, 3);
        let mut chunks = c.push(&data);
        chunks.extend(c.finish());
        assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK_BYTES));
        assert_eq!(chunks.concat(), data);
    }
}
