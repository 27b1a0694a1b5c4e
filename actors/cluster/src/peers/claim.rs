//! The name a dialing node claims, read from the first frame of
//! ractor_cluster's handshake before the NodeServer sees the connection.
//!
//! Over mutual TLS the dialer's certificate names its node id, and the
//! claim must be that node. The check cannot wait for ractor_cluster's
//! "authenticated" event: by then the NodeServer has already run its
//! duplicate-connection election on the claimed name, and a certified
//! impostor claiming a linked member's name wins it and closes that
//! member's real link. So the link port reads the first frame itself (the
//! dialer always speaks first: it sends its `NameMessage`), checks it,
//! and hands the NodeServer a stream that replays the frame.
//!
//! Only the name is decoded, by a three-field mirror of ractor_cluster's
//! protobuf (`meta.NetworkMessage` → `auth.AuthenticationMessage` →
//! `auth.NameMessage`, field 1 each, as in its `protocol/*.proto`); every
//! other field is skipped, and the NodeServer decodes the frame again in
//! full. The frame is bounded far below ractor_cluster's own frame limit.

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::membership::MemberKey;

/// Largest first frame accepted, in bytes: a name message holds a node
/// name, flags, an address and a nonce (about 150 bytes in practice).
pub const MAX_CLAIM_FRAME_BYTES: u64 = 1024;

/// Why a dialer's first frame names no member.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClaimError {
    /// The length prefix is over [`MAX_CLAIM_FRAME_BYTES`].
    #[error("first handshake frame of {0} bytes (at most {MAX_CLAIM_FRAME_BYTES})")]
    TooLarge(u64),
    /// Not a protobuf network message.
    #[error("first handshake frame is not a cluster message: {0}")]
    Malformed(String),
    /// A cluster message, but not a name.
    #[error("first handshake frame is not a name message")]
    NotAName,
    /// A name that is not `<node id>.<generation>@<host>`.
    #[error("claimed name {0:?} is not a member name")]
    NotAMember(String),
    /// The connection failed or closed while reading.
    #[error("reading the first handshake frame: {0}")]
    Io(String),
}

#[derive(Clone, PartialEq, prost::Message)]
struct NetworkMessage {
    #[prost(message, optional, tag = "1")]
    auth: Option<AuthenticationMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AuthenticationMessage {
    #[prost(message, optional, tag = "1")]
    name: Option<NameMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NameMessage {
    #[prost(string, tag = "1")]
    name: String,
}

/// The member a first-frame payload (without its length prefix) claims to be.
pub fn claimed_member(payload: &[u8]) -> Result<MemberKey, ClaimError> {
    use prost::Message;
    let message =
        NetworkMessage::decode(payload).map_err(|e| ClaimError::Malformed(e.to_string()))?;
    let name = message
        .auth
        .and_then(|auth| auth.name)
        .map(|name| name.name)
        .ok_or(ClaimError::NotAName)?;
    // `<link name>@<host>`, as the peers actor reads it from a session.
    let link_name = name.split('@').next().unwrap_or_default();
    MemberKey::from_link_name(link_name).ok_or(ClaimError::NotAMember(name))
}

/// Read the dialer's first frame (u64 big-endian length, then payload):
/// the whole frame as read, to be replayed, and the member it claims.
pub async fn read_claim<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<(Vec<u8>, MemberKey), ClaimError> {
    let io = |e: std::io::Error| ClaimError::Io(e.to_string());
    let length = reader.read_u64().await.map_err(io)?;
    if length > MAX_CLAIM_FRAME_BYTES {
        return Err(ClaimError::TooLarge(length));
    }
    // Bounded above: the cast cannot truncate.
    let mut frame = vec![0u8; 8 + length as usize];
    frame[..8].copy_from_slice(&length.to_be_bytes());
    reader.read_exact(&mut frame[8..]).await.map_err(io)?;
    let member = claimed_member(&frame[8..])?;
    Ok((frame, member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn frame_of(message: &NetworkMessage) -> Vec<u8> {
        let payload = message.encode_to_vec();
        let mut frame = (payload.len() as u64).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        frame
    }

    fn name_frame(name: &str) -> Vec<u8> {
        frame_of(&NetworkMessage {
            auth: Some(AuthenticationMessage {
                name: Some(NameMessage { name: name.into() }),
            }),
        })
    }

    #[tokio::test]
    async fn a_name_frame_is_read_whole_and_its_member_named() {
        let frame = name_frame("abc.7@127.0.0.1");
        let (read, member) = read_claim(&mut frame.as_slice()).await.unwrap();
        assert_eq!(read, frame, "the frame is kept whole for the NodeServer");
        assert_eq!(member, MemberKey::new("abc", 7));
    }

    #[tokio::test]
    async fn anything_else_is_refused_before_allocating_much() {
        let huge = (MAX_CLAIM_FRAME_BYTES + 1).to_be_bytes();
        assert_eq!(
            read_claim(&mut huge.as_slice()).await.unwrap_err(),
            ClaimError::TooLarge(MAX_CLAIM_FRAME_BYTES + 1)
        );
        let not_a_name = frame_of(&NetworkMessage {
            auth: Some(AuthenticationMessage { name: None }),
        });
        assert_eq!(
            read_claim(&mut not_a_name.as_slice()).await.unwrap_err(),
            ClaimError::NotAName
        );
        let stranger = name_frame("no-generation@host");
        assert!(matches!(
            read_claim(&mut stranger.as_slice()).await,
            Err(ClaimError::NotAMember(_))
        ));
        let garbage = [0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_claim(&mut garbage.as_slice()).await,
            Err(ClaimError::Malformed(_))
        ));
        let short = [0, 0, 0, 0, 0, 0, 0, 9, 1];
        assert!(matches!(
            read_claim(&mut short.as_slice()).await,
            Err(ClaimError::Io(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = claimed_member(&payload);
        }
    }
}
