//! BLAKE3 of chunk-sized buffers without stalling the async workers: a
//! 1 MiB chunk takes a few hundred microseconds to hash, long enough to
//! delay every control message queued behind it on a 2-core node, so
//! buffers from `OFF_THREAD_BYTES` up are hashed on a blocking thread.

/// Buffers at or above this size are hashed on a blocking thread.
pub const OFF_THREAD_BYTES: usize = 64 * 1024;

/// The hash could not be computed (the blocking pool is shutting down).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("hashing failed: {0}")]
pub struct DigestError(String);

/// BLAKE3 of `data`, handing `data` back.
pub async fn blake3_of(data: Vec<u8>) -> Result<([u8; 32], Vec<u8>), DigestError> {
    if data.len() < OFF_THREAD_BYTES {
        return Ok((*blake3::hash(&data).as_bytes(), data));
    }
    tokio::task::spawn_blocking(move || (*blake3::hash(&data).as_bytes(), data))
        .await
        .map_err(|e| DigestError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_and_large_buffers_hash_alike() {
        for len in [
            0,
            10,
            OFF_THREAD_BYTES - 1,
            OFF_THREAD_BYTES,
            3 * OFF_THREAD_BYTES,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (hash, back) = blake3_of(data.clone()).await.unwrap();
            assert_eq!(hash, *blake3::hash(&data).as_bytes());
            assert_eq!(back, data);
        }
    }
}
