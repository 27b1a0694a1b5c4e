//! Length-prefixed frames: a 4-byte big-endian length, then that many
//! bytes. A length over [`MAX_FRAME_BYTES`] is refused before anything is
//! allocated, so a hostile peer cannot make us reserve memory.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use hypha_core::codec::MAX_ENCODED_BYTES;

/// Largest frame: one encoded DHT message plus its version prefix.
pub const MAX_FRAME_BYTES: usize = MAX_ENCODED_BYTES + 64;

/// Read one frame; `Ok(None)` on a clean end of stream before its length.
pub async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {MAX_FRAME_BYTES}"),
        ));
    }
    let mut bytes = vec![0u8; len];
    reader.read_exact(&mut bytes).await?;
    Ok(Some(bytes))
}

/// Write one frame and flush it.
pub async fn write<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds {MAX_FRAME_BYTES}", bytes.len()),
        ));
    }
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    writer.write_all(&len.to_be_bytes()).await?;
    writer.write_all(bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversize_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write(&mut a, b"hello").await.unwrap();
        write(&mut a, b"").await.unwrap();
        assert_eq!(read(&mut b).await.unwrap().unwrap(), b"hello");
        assert_eq!(read(&mut b).await.unwrap().unwrap(), b"");
        let huge = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
        a.write_all(&huge).await.unwrap();
        let err = read(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        drop(a);
        assert!(read(&mut b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"abc").await.unwrap();
        drop(a);
        assert!(read(&mut b).await.is_err());
    }
}
