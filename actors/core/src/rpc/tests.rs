//! The RPC layer on a toy protocol: framing and refusals as pure functions,
//! then the service actor and the caller in one process (no network).

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::frame::{decode_request, decode_response, encode_request, encode_response};
use super::*;
use crate::codec::MAX_ENCODED_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum TestCode {
    BadRequest,
    Version,
    Unavailable,
    Broken,
}

impl Code for TestCode {
    const BAD_REQUEST: Self = Self::BadRequest;
    const VERSION: Self = Self::Version;
    const UNAVAILABLE: Self = Self::Unavailable;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Req {
    Echo(u32),
    Big,
    Wait,
    Refuse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Resp {
    Echo(u32),
    Big(Vec<u8>),
    Error(WireError<TestCode>),
}

struct Test;

impl Protocol for Test {
    type Request = Req;
    type Response = Resp;
    type Code = TestCode;
    const VERSION: u16 = 3;
    const FORMAT: &'static str = "test wire";
    const GROUP: &'static str = "hypha.rpc-test";
    const BAD_REQUESTS_METRIC: &'static str = "hypha_rpc_test_bad_requests_total";
    const ENCODE_FAILED: TestCode = TestCode::Broken;

    fn validate(request: &Req) -> Result<(), WireError<TestCode>> {
        match request {
            Req::Echo(n) if *n > 100 => Err(WireError::new(TestCode::BadRequest, "over 100")),
            _ => Ok(()),
        }
    }

    fn refusal(err: WireError<TestCode>) -> Resp {
        Resp::Error(err)
    }

    fn into_result(response: Resp) -> Result<Resp, WireError<TestCode>> {
        match response {
            Resp::Error(err) => Err(err),
            other => Ok(other),
        }
    }
}

/// Answers at once, except `Wait`, which waits until the gate opens.
#[derive(Clone)]
struct TestHandler {
    gate: watch::Receiver<bool>,
}

impl Handler for TestHandler {
    type Protocol = Test;

    async fn answer(&self, request: Req) -> Resp {
        match request {
            Req::Echo(n) => Resp::Echo(n),
            Req::Big => Resp::Big(vec![7; MAX_ENCODED_BYTES]),
            Req::Wait => {
                let mut gate = self.gate.clone();
                let _ = gate.wait_for(|open| *open).await;
                Resp::Echo(0)
            }
            Req::Refuse => Resp::Error(WireError::new(TestCode::Unavailable, "no")),
        }
    }
}

fn code_of(bytes: &[u8]) -> TestCode {
    match decode_response::<Test>(bytes) {
        Ok(Resp::Error(err)) => err.code,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn frames_carry_the_version_then_the_message() {
    let bytes = encode_request::<Test>(&Req::Echo(5)).unwrap();
    assert_eq!(bytes, [0, 3, 0, 5]);
    assert_eq!(decode_request::<Test>(&bytes), Ok(Req::Echo(5)));
    let bytes = encode_response::<Test>(&Resp::Echo(5)).unwrap();
    assert_eq!(decode_response::<Test>(&bytes), Ok(Resp::Echo(5)));
}

#[test]
fn other_versions_short_frames_and_out_of_range_requests_are_refused() {
    let err = decode_request::<Test>(&[0, 4, 0, 5]).unwrap_err();
    assert_eq!(err.code, TestCode::Version);
    assert_eq!(err.message, "test wire version 4; this node speaks 3");
    let err = decode_request::<Test>(&[0]).unwrap_err();
    assert_eq!(err.code, TestCode::BadRequest);
    assert_eq!(err.message, "message shorter than its header");
    let over = encode_request::<Test>(&Req::Echo(101)).unwrap();
    assert_eq!(
        decode_request::<Test>(&over).unwrap_err().code,
        TestCode::BadRequest
    );
    assert_eq!(
        decode_request::<Test>(&[0, 3, 0xff]).unwrap_err().code,
        TestCode::BadRequest
    );
}

#[test]
fn an_answer_that_does_not_encode_becomes_a_decodable_refusal() {
    let big = Resp::Big(vec![7; MAX_ENCODED_BYTES]);
    assert!(encode_response::<Test>(&big).is_err());
    assert_eq!(code_of(&encode_or_error::<Test>(&big)), TestCode::Broken);
}

#[test]
fn errors_say_what_failed() {
    let refused = RpcError::Remote(WireError::new(TestCode::Unavailable, "busy"));
    assert_eq!(refused.to_string(), "peer refused: Unavailable: busy");
    let codec = RpcError::<TestCode>::codec("too large");
    assert_eq!(
        codec,
        RpcError::Codec(WireError::new(TestCode::BadRequest, "too large"))
    );
    assert_eq!(
        RpcError::<TestCode>::Timeout(5).to_string(),
        "no answer within 5 ms"
    );
}

async fn start(name: &str) -> (ActorRef<ServiceMessage>, watch::Sender<bool>) {
    let (open, gate) = watch::channel(false);
    let args = ServiceArgs {
        group: group::<Test>(name),
        handler: TestHandler { gate },
    };
    let (service, _) = Actor::spawn(None, Service::<TestHandler>::new(), args)
        .await
        .unwrap();
    (service, open)
}

async fn ask(service: &ActorRef<ServiceMessage>, bytes: Vec<u8>) -> Vec<u8> {
    let timeout = Some(Duration::from_secs(10));
    match service
        .call(|reply| ServiceMessage::Call(bytes, reply), timeout)
        .await
    {
        Ok(CallResult::Success(answer)) => answer,
        _ => panic!("the service did not answer"),
    }
}

#[tokio::test]
async fn the_service_answers_and_refuses_what_does_not_decode() {
    let (service, _open) = start("answers").await;
    assert_eq!(ractor::pg::get_members(&group::<Test>("answers")).len(), 1);
    let echo = encode_request::<Test>(&Req::Echo(9)).unwrap();
    assert_eq!(
        decode_response::<Test>(&ask(&service, echo).await),
        Ok(Resp::Echo(9))
    );
    assert_eq!(
        code_of(&ask(&service, vec![0, 9, 1]).await),
        TestCode::Version
    );
    assert_eq!(code_of(&ask(&service, vec![]).await), TestCode::BadRequest);
    let big = encode_request::<Test>(&Req::Big).unwrap();
    assert_eq!(code_of(&ask(&service, big).await), TestCode::Broken);
    service.stop(None);
}

#[tokio::test]
async fn past_the_in_flight_bound_requests_are_refused_as_unavailable() {
    let (service, open) = start("bounded").await;
    let wait = encode_request::<Test>(&Req::Wait).unwrap();
    let mut waiting = Vec::new();
    for _ in 0..MAX_IN_FLIGHT {
        let (tx, rx) = ractor::concurrency::oneshot();
        service
            .send_message(ServiceMessage::Call(wait.clone(), tx.into()))
            .unwrap();
        waiting.push(rx);
    }
    // The mailbox is in order: the 256 are in flight when this arrives.
    assert_eq!(
        code_of(&ask(&service, wait.clone()).await),
        TestCode::Unavailable
    );
    open.send_replace(true);
    for rx in waiting {
        let answer = rx.await.unwrap();
        assert_eq!(decode_response::<Test>(&answer), Ok(Resp::Echo(0)));
    }
    // Finished tasks leave the set: there is room again.
    let echo = encode_request::<Test>(&Req::Echo(1)).unwrap();
    assert_eq!(
        decode_response::<Test>(&ask(&service, echo).await),
        Ok(Resp::Echo(1))
    );
    service.stop(None);
}

#[tokio::test]
async fn a_listener_beside_the_actor_answers_the_same_way() {
    let (_open, gate) = watch::channel(false);
    let handler = TestHandler { gate };
    let echo = encode_request::<Test>(&Req::Echo(4)).unwrap();
    let answer = answer_frame(&handler, &echo).await;
    assert_eq!(decode_response::<Test>(&answer), Ok(Resp::Echo(4)));
    assert_eq!(
        code_of(&answer_frame(&handler, &[1]).await),
        TestCode::BadRequest
    );
}

#[tokio::test(start_paused = true)]
async fn local_calls_time_out_and_turn_refusals_into_errors() {
    let (_open, gate) = watch::channel(false);
    let caller = Caller::new("me.1".into(), TestHandler { gate });
    let timeout = Duration::from_millis(250);
    assert_eq!(
        caller.call("me.1", Req::Echo(2), timeout).await,
        Ok(Resp::Echo(2))
    );
    assert_eq!(
        caller.call("me.1", Req::Wait, timeout).await,
        Err(RpcError::Timeout(250))
    );
    assert_eq!(
        caller.call("me.1", Req::Refuse, timeout).await,
        Err(RpcError::Remote(WireError::new(
            TestCode::Unavailable,
            "no"
        )))
    );
}

#[tokio::test]
async fn a_peer_without_a_linked_service_is_unreachable() {
    let (_open, gate) = watch::channel(false);
    let caller = Caller::new("me.1".into(), TestHandler { gate });
    let answer = caller
        .call("nobody.1", Req::Echo(2), Duration::from_secs(1))
        .await;
    assert_eq!(answer, Err(RpcError::Unreachable("nobody.1".into())));
}
