//! Test workers and helpers shared by the supervision tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hypha_supervisors::{ChildSpec, CrashMessage, SupervisorRef};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};

/// Ordered record of starts and stops across all test workers.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub struct Worker;

#[derive(Clone)]
pub struct WorkerArgs {
    pub name: String,
    pub log: Log,
    pub fail_start: bool,
    pub stop_delay_ms: u64,
    /// Fail this many of the next starts (shared across incarnations).
    pub fail_next_starts: Arc<AtomicU32>,
}

pub enum WorkerMsg {
    Ping(RpcReplyPort<String>),
    ExitNormal,
    ExitWith(String),
    Fail,
    Crash,
}

impl ractor::Message for WorkerMsg {}
impl CrashMessage for WorkerMsg {
    fn crash() -> Self {
        WorkerMsg::Crash
    }
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerArgs, ActorProcessingErr> {
        args.log.push(format!("start {}", args.name));
        let fail_next = args
            .fail_next_starts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if args.fail_start || fail_next {
            return Err("refusing to start".into());
        }
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        if state.stop_delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(state.stop_delay_ms)).await;
        }
        state.log.push(format!("stop {}", state.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(state.name.clone());
            }
            WorkerMsg::ExitNormal => myself.stop(None),
            WorkerMsg::ExitWith(reason) => myself.stop(Some(reason)),
            WorkerMsg::Fail => return Err("boom".into()),
            WorkerMsg::Crash => panic!("injected"),
        }
        Ok(())
    }
}

pub fn args(name: &str, log: &Log) -> WorkerArgs {
    WorkerArgs {
        name: name.to_owned(),
        log: log.clone(),
        fail_start: false,
        stop_delay_ms: 0,
        fail_next_starts: Arc::new(AtomicU32::new(0)),
    }
}

/// A permanent worker child named `id`.
pub fn worker(id: &str, log: &Log) -> ChildSpec {
    worker_with(id, args(id, log))
}

pub fn worker_with(id: &str, a: WorkerArgs) -> ChildSpec {
    ChildSpec::actor(id, move |_ctx| (None, Worker, a.clone())).crash_message::<WorkerMsg>()
}

pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub fn sup(r: &ActorRef<hypha_supervisors::SupervisorMessage>) -> SupervisorRef {
    SupervisorRef::new(r.clone(), CALL_TIMEOUT)
}

/// The running cell at `path` below `s`.
pub async fn cell(s: &SupervisorRef, path: &[&str]) -> Option<ActorCell> {
    s.lookup(path).await.unwrap()
}

pub async fn send(s: &SupervisorRef, path: &[&str], msg: WorkerMsg) {
    let c = cell(s, path).await.expect("child running");
    ActorRef::<WorkerMsg>::from(c).cast(msg).unwrap();
}

/// Poll `cond` until it holds, for at most 5 s of real time.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition not reached within 5 s: {what}");
}

/// Poll `cond` without letting paused time advance (yields only).
pub async fn eventually_paused<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200_000 {
        if cond().await {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached: {what}");
}

/// Actor id (as text) of the child at `path`, or None when not running.
pub async fn id_of(s: &SupervisorRef, path: &[&str]) -> Option<String> {
    cell(s, path).await.map(|c| c.get_id().to_string())
}

/// Restart count of a direct child.
pub async fn restarts(s: &SupervisorRef, id: &str) -> u64 {
    let snap = s.snapshot().await.unwrap();
    snap.children
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.restarts)
        .unwrap_or(u64::MAX)
}

/// Advance paused time by `ms` and let the tasks whose timers fired run.
pub async fn advance_and_settle(ms: u64) {
    tokio::time::advance(Duration::from_millis(ms)).await;
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// States of all children of `s`, in start order.
pub async fn states(s: &SupervisorRef) -> Vec<hypha_supervisors::ChildState> {
    s.which_children()
        .await
        .unwrap()
        .iter()
        .map(|c| c.state)
        .collect()
}
