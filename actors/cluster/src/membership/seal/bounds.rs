//! Bounds on what one authentic gossip datagram may make chitchat do.
//!
//! chitchat 0.13 decodes a datagram's digest and delta as streams of
//! blocks, each zstd-compressed or raw, and decompresses every block into
//! a 64 KiB buffer with no limit on the number of blocks: ~6,500 tiny
//! compressed blocks in one 64 KiB datagram make it allocate ~400 MiB.
//! Sealing keeps outsiders away from the decoder; this walk keeps a
//! holder of the key within a fixed budget too. It reads the same layout
//! chitchat reads (`message_serialize.rs`, `serialize.rs`: magic, version,
//! type, then block streams) and adds up what the blocks would decode to,
//! from the zstd frame headers, before chitchat sees a byte.
//!
//! Only protocol version 1 (compressed digests) is accepted: every Hypha
//! node sends it, and version 0 digests are not block streams.
//!
//! Pure: bytes in, a verdict out.

/// chitchat's magic number, little-endian on the wire.
const CHITCHAT_MAGIC: u16 = 45_139;
const PROTOCOL_V1: u8 = 1;
/// chitchat decompresses each block into a buffer of this size.
const BLOCK_MAX_DECODED: u64 = u16::MAX as u64;

/// Why a plaintext was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    /// Not the layout chitchat reads.
    #[error("not a chitchat v1 datagram")]
    Layout,
    /// Would decode to more than the budget.
    #[error("decodes to {decoded_bytes} bytes, over the {max_bytes}-byte budget")]
    TooLarge {
        /// What the blocks add up to (so far).
        decoded_bytes: u64,
        /// The budget.
        max_bytes: u64,
    },
}

/// The message types chitchat sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Digest and cluster id.
    Syn,
    /// Digest and delta.
    SynAck,
    /// Delta.
    Ack,
    /// "Wrong cluster", no body.
    BadCluster,
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BoundsError> {
        if self.buf.len() < n {
            return Err(BoundsError::Layout);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BoundsError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, BoundsError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Check `plaintext` as chitchat would read it; returns its kind and what
/// its blocks decode to.
pub fn check(plaintext: &[u8], max_decoded_bytes: u64) -> Result<(MessageKind, u64), BoundsError> {
    let mut c = Cursor { buf: plaintext };
    if c.u16()? != CHITCHAT_MAGIC || c.u8()? != PROTOCOL_V1 {
        return Err(BoundsError::Layout);
    }
    let kind = match c.u8()? {
        0 => MessageKind::Syn,
        1 => MessageKind::SynAck,
        2 => MessageKind::Ack,
        3 => MessageKind::BadCluster,
        _ => return Err(BoundsError::Layout),
    };
    let streams = match kind {
        MessageKind::Syn | MessageKind::Ack => 1,
        MessageKind::SynAck => 2,
        MessageKind::BadCluster => 0,
    };
    let mut decoded = 0u64;
    for _ in 0..streams {
        decoded = walk_stream(&mut c, decoded, max_decoded_bytes)?;
    }
    if kind == MessageKind::Syn {
        // The cluster id: a u16 length and its bytes.
        let len = c.u16()?;
        c.take(usize::from(len))?;
    }
    Ok((kind, decoded))
}

/// Walk one block stream, adding its decoded size to `decoded`.
fn walk_stream(c: &mut Cursor<'_>, mut decoded: u64, max_bytes: u64) -> Result<u64, BoundsError> {
    loop {
        let block_type = c.u8()?;
        if block_type == 0 {
            return Ok(decoded);
        }
        let len = c.u16()?;
        let block = c.take(usize::from(len))?;
        let size = match block_type {
            1 => compressed_size(block),
            2 => u64::from(len),
            _ => return Err(BoundsError::Layout),
        };
        decoded = decoded.saturating_add(size);
        if decoded > max_bytes {
            return Err(BoundsError::TooLarge {
                decoded_bytes: decoded,
                max_bytes,
            });
        }
    }
}

/// What a compressed block decodes to: the declared size of its frame
/// when the block is exactly one frame (chitchat writes one per block, and
/// zstd refuses a frame whose content differs from its declared size);
/// otherwise the most chitchat's per-block buffer takes.
fn compressed_size(block: &[u8]) -> u64 {
    let one_frame = zstd_safe::find_frame_compressed_size(block) == Ok(block.len());
    match zstd_safe::get_frame_content_size(block) {
        Ok(Some(size)) if one_frame => size.min(BLOCK_MAX_DECODED),
        _ => BLOCK_MAX_DECODED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8) -> Vec<u8> {
        let mut v = CHITCHAT_MAGIC.to_le_bytes().to_vec();
        v.push(PROTOCOL_V1);
        v.push(kind);
        v
    }

    fn raw_block(v: &mut Vec<u8>, bytes: &[u8]) {
        v.push(2);
        v.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        v.extend_from_slice(bytes);
    }

    fn zstd_block(v: &mut Vec<u8>, decoded: &[u8]) {
        let compressed = zstd_compress(decoded);
        v.push(1);
        v.extend_from_slice(&(compressed.len() as u16).to_le_bytes());
        v.extend_from_slice(&compressed);
    }

    fn zstd_compress(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; zstd_safe::compress_bound(data.len())];
        let n = zstd_safe::compress(&mut out[..], data, 3).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn a_syn_ack_adds_up_both_streams() {
        let mut v = header(1);
        raw_block(&mut v, &[1; 100]);
        v.push(0);
        zstd_block(&mut v, &[0; 5_000]);
        v.push(0);
        assert_eq!(check(&v, 1 << 20), Ok((MessageKind::SynAck, 5_100)));
    }

    #[test]
    fn a_syn_needs_its_cluster_id() {
        let mut v = header(0);
        v.push(0);
        assert_eq!(check(&v, 1 << 20), Err(BoundsError::Layout));
        v.extend_from_slice(&3u16.to_le_bytes());
        v.extend_from_slice(b"abc");
        assert_eq!(check(&v, 1 << 20), Ok((MessageKind::Syn, 0)));
    }

    #[test]
    fn many_small_compressed_blocks_are_refused() {
        // The amplification of hole 5: tiny blocks of 64 KiB each.
        let mut v = header(2);
        for _ in 0..200 {
            zstd_block(&mut v, &[0; 65_535]);
        }
        v.push(0);
        assert!(v.len() < 65_507, "fits one datagram: {}", v.len());
        assert_eq!(
            check(&v, 4 << 20),
            Err(BoundsError::TooLarge {
                decoded_bytes: 65 * 65_535,
                max_bytes: 4 << 20
            })
        );
    }

    #[test]
    fn other_layouts_are_refused() {
        assert_eq!(check(&[], 1), Err(BoundsError::Layout));
        let mut v0 = header(2);
        v0[2] = 0;
        v0.push(0);
        assert_eq!(check(&v0, 1 << 20), Err(BoundsError::Layout));
        let mut bad_block = header(2);
        bad_block.push(7);
        assert_eq!(check(&bad_block, 1 << 20), Err(BoundsError::Layout));
        let mut truncated = header(2);
        truncated.extend_from_slice(&[2, 10, 0, 1, 2]);
        assert_eq!(check(&truncated, 1 << 20), Err(BoundsError::Layout));
        assert_eq!(check(&header(3), 1), Ok((MessageKind::BadCluster, 0)));
    }

    #[test]
    fn a_block_of_two_frames_counts_as_a_full_buffer() {
        let mut two = zstd_compress(&[0; 10]);
        two.extend(zstd_compress(&[0; 60_000]));
        let mut v = header(2);
        v.push(1);
        v.extend_from_slice(&(two.len() as u16).to_le_bytes());
        v.extend_from_slice(&two);
        v.push(0);
        assert_eq!(check(&v, 1 << 20), Ok((MessageKind::Ack, 65_535)));
    }
}
