//! Test vectors of the two protocols on the shared RPC layer (issue 24):
//! one encoded sample of every request, every response and every refusal a
//! service sends, for DHT wire version 1 (recorded from the code before
//! the layer was shared) and work wire version 2 (chains and kept logs,
//! recorded when it was introduced). Peers of other builds read these
//! bytes: they must never change within a version.

mod dht;
mod work;

use std::fmt::Debug;

use hypha_core::rpc::{self, frame, Protocol, ServiceMessage};
use hypha_dht::wire::DhtWire;
use hypha_work::wire::WorkWire;
use ractor::message::SerializedMessage;
use ractor::Message;

/// Each sample's name and encoding in hex, as a peer receives it; every
/// request and response also decodes back to itself.
fn encodings<P: Protocol>(
    requests: Vec<(&str, P::Request)>,
    responses: Vec<(&str, P::Response)>,
    refused: Vec<(&str, Vec<u8>)>,
) -> Vec<(String, String)>
where
    P::Request: PartialEq + Debug,
    P::Response: PartialEq + Debug,
{
    let mut found = Vec::new();
    for (name, request) in requests {
        let Ok(bytes) = frame::encode_request::<P>(&request) else {
            panic!("{name} does not encode");
        };
        assert_eq!(frame::decode_request::<P>(&bytes), Ok(request));
        found.push((format!("request_{name}"), hex::encode(bytes)));
    }
    for (name, response) in responses {
        let bytes = rpc::encode_or_error::<P>(&response);
        assert_eq!(frame::decode_response::<P>(&bytes), Ok(response));
        found.push((format!("response_{name}"), hex::encode(bytes)));
    }
    for (name, bytes) in refused {
        let Err(err) = frame::decode_request::<P>(&bytes) else {
            panic!("{name} is not refused");
        };
        let reply = rpc::encode_or_error::<P>(&P::refusal(err));
        found.push((format!("reply_{name}"), hex::encode(reply)));
    }
    found
}

/// Frames a service refuses: too short, another version, out of range.
fn refused<P: Protocol>(
    valid: &P::Request,
    out_of_range: &P::Request,
) -> Vec<(&'static str, Vec<u8>)> {
    let frame_of = |request| frame::encode_request::<P>(request).unwrap_or_default();
    let mut other_version = frame_of(valid);
    other_version[1] = 9;
    vec![
        ("refuse_short", vec![0u8]),
        ("refuse_other_version", other_version),
        ("refuse_invalid", frame_of(out_of_range)),
    ]
}

fn pinned(vectors: &[(&str, &str)]) -> Vec<(String, String)> {
    let owned = vectors.iter().map(|(n, h)| (n.to_string(), h.to_string()));
    owned.collect()
}

#[test]
fn dht_messages_keep_their_version_one_bytes() {
    let (valid, out_of_range) = dht::valid_and_out_of_range();
    let refused = refused::<DhtWire>(&valid, &out_of_range);
    let found = encodings::<DhtWire>(dht::requests(), dht::responses(), refused);
    assert_eq!(found, pinned(dht::VECTORS));
}

#[test]
fn work_messages_keep_their_version_two_bytes() {
    let (valid, out_of_range) = work::valid_and_out_of_range();
    let refused = refused::<WorkWire>(&valid, &out_of_range);
    let found = encodings::<WorkWire>(work::requests(), work::responses(), refused);
    if std::env::var_os("HYPHA_PRINT_VECTORS").is_some() {
        for (name, hex) in &found {
            println!("    (\"{name}\", \"{hex}\"),");
        }
    }
    assert_eq!(found, pinned(work::VECTORS));
}

/// The node-link envelope of both services: ractor_cluster matches the
/// variant by name and carries the frame as one length-prefixed run (u64,
/// big-endian).
#[tokio::test]
async fn the_service_message_travels_as_call_with_the_frame_length_prefixed() {
    let (tx, _rx) = ractor::concurrency::oneshot();
    let message = ServiceMessage::Call(vec![0, 1, 2, 3], tx.into());
    match message.serialize() {
        Ok(SerializedMessage::Call { variant, args, .. }) => {
            assert_eq!(variant, "Call");
            assert_eq!(args, [0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 2, 3]);
        }
        _ => panic!("not a call envelope"),
    }
}
