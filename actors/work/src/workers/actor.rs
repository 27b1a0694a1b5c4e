//! The workers actor: accepts offers while a slot is free, runs each
//! attempt in its task set under the job's timeout, heartbeats running
//! jobs to their queue's current owner (which may tell it to stop), and
//! reports every ended attempt until an owner acknowledges it durable.
//! A restart loses the running attempts; their leases expire and the
//! owners run them again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::messages::WorkersMessage;
use crate::client::{RpcError, WorkClient};
use crate::handler::{JobInput, Registry};
use crate::job::{AttemptEnd, JobId, JobSpec, MAX_INLINE_BYTES};
use crate::owner_of;
use crate::wire::{ErrorCode, OfferAnswer, WireError, WorkRequest, WorkResponse};
use hypha_cluster::membership::{MemberKey, MembershipMessage};
use hypha_core::clock::SharedClock;
use hypha_dht::files::Files;
use hypha_dht::placement::Placement;

/// Worker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Attempts run at once.
    pub slots: u32,
    /// Heartbeats (and report retries) this often.
    pub heartbeat_ms: u64,
    /// Timeout of one call to an owner.
    pub rpc_timeout_ms: u64,
    /// Ended attempts whose reports are kept for retry; beyond, the
    /// oldest is dropped (its job runs again after its lease expires).
    pub max_unreported: usize,
    /// A report no owner acknowledged for this long is dropped.
    pub report_give_up_ms: u64,
}

/// What each incarnation is given.
#[derive(Clone)]
pub struct WorkersArgs {
    /// This member.
    pub me: MemberKey,
    /// Job kinds.
    pub registry: Registry,
    /// Reads stored payloads.
    pub files: Files,
    /// Calls to owners.
    pub client: WorkClient,
    /// Who owns which queue.
    pub placement: watch::Receiver<Arc<Placement>>,
    /// Settings.
    pub settings: WorkerSettings,
    /// Registered name of the membership actor (load in gossip).
    pub membership: String,
    /// The node's clock (report ages).
    pub clock: SharedClock,
}

struct Running {
    spec: JobSpec,
    attempt: u32,
    abort: AbortHandle,
}

struct Report {
    spec: JobSpec,
    attempt: u32,
    end: AttemptEnd,
    result: Vec<u8>,
    log: Vec<u8>,
    since_ms: u64,
    sending: bool,
}

/// State of one incarnation.
pub struct WorkersState {
    args: WorkersArgs,
    myself: ActorRef<WorkersMessage>,
    running: HashMap<JobId, Running>,
    unreported: BTreeMap<JobId, Report>,
    jobs: JoinSet<()>,
    calls: JoinSet<()>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// The actor.
pub struct Workers;

impl WorkersState {
    fn request(&mut self, request: WorkRequest, reply: RpcReplyPort<WorkResponse>) {
        let answer = match request {
            WorkRequest::Offer {
                id, spec, attempt, ..
            } => WorkResponse::Offer(self.offer(id, spec, attempt)),
            WorkRequest::Abort { id } => {
                self.abort(id);
                WorkResponse::Ok
            }
            _ => WorkResponse::Error(WireError::new(
                ErrorCode::BadRequest,
                "sent to a worker; meant for an owner",
            )),
        };
        let _ = reply.send(answer);
    }

    fn offer(&mut self, id: JobId, spec: JobSpec, attempt: u32) -> OfferAnswer {
        if self.running.contains_key(&id) {
            return OfferAnswer::Duplicate;
        }
        if self.running.len() >= self.args.settings.slots as usize {
            return OfferAnswer::Busy;
        }
        let abort = self.start(id, attempt, spec.clone());
        self.running.insert(
            id,
            Running {
                spec,
                attempt,
                abort,
            },
        );
        metrics::counter!("hypha_jobs_attempts_started_total").increment(1);
        self.publish();
        OfferAnswer::Accepted
    }

    fn start(&mut self, id: JobId, attempt: u32, spec: JobSpec) -> AbortHandle {
        let handler = self.args.registry.get(&spec.kind);
        let files = self.args.files.clone();
        let myself = self.myself.clone();
        let timeout = Duration::from_millis(spec.timeout_ms);
        self.jobs.spawn(async move {
            let (end, result, log) = match handler {
                None => (
                    AttemptEnd::Failed(format!("no handler for kind `{}` on this node", spec.kind)),
                    Vec::new(),
                    Vec::new(),
                ),
                Some(h) => {
                    let input = JobInput::new(id, attempt, spec, Some(files));
                    let log = input.log().clone();
                    let (end, result) = outcome(tokio::time::timeout(timeout, h.run(input)).await);
                    (end, result, log.take())
                }
            };
            let _ = myself.cast(WorkersMessage::Ended {
                id,
                attempt,
                end,
                result,
                log,
            });
        })
    }

    fn abort(&mut self, id: JobId) {
        if let Some(r) = self.running.remove(&id) {
            r.abort.abort();
            metrics::counter!("hypha_jobs_attempts_aborted_total").increment(1);
            self.publish();
        }
    }

    fn ended(&mut self, id: JobId, attempt: u32, end: AttemptEnd, result: Vec<u8>, log: Vec<u8>) {
        let Some(r) = self.running.remove(&id) else {
            return;
        };
        if r.attempt != attempt {
            return;
        }
        if self.unreported.len() >= self.args.settings.max_unreported {
            if let Some((&oldest, _)) = self.unreported.iter().min_by_key(|(_, r)| r.since_ms) {
                self.unreported.remove(&oldest);
                metrics::counter!("hypha_jobs_reports_dropped_total").increment(1);
            }
        }
        self.unreported.insert(
            id,
            Report {
                spec: r.spec,
                attempt,
                end,
                result,
                log,
                since_ms: self.args.clock.wall_ms(),
                sending: false,
            },
        );
        self.publish();
        self.send_reports();
    }

    fn owner(&self, queue: &str) -> Option<MemberKey> {
        owner_of(&self.args.placement.borrow(), queue)
    }

    fn send_reports(&mut self) {
        let now = self.args.clock.wall_ms();
        let give_up = self.args.settings.report_give_up_ms;
        self.unreported.retain(|_, r| {
            let keep = now.saturating_sub(r.since_ms) < give_up;
            if !keep {
                metrics::counter!("hypha_jobs_reports_dropped_total").increment(1);
            }
            keep
        });
        let due: Vec<JobId> = self
            .unreported
            .iter()
            .filter(|(_, r)| !r.sending)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(r) = self.unreported.get_mut(&id) else {
                continue;
            };
            let Some(owner) = owner_of(&self.args.placement.borrow(), &r.spec.queue) else {
                continue;
            };
            r.sending = true;
            let request = WorkRequest::Finished {
                worker: self.args.me.link_name(),
                id,
                spec: r.spec.clone(),
                attempt: r.attempt,
                end: r.end.clone(),
                result: r.result.clone(),
                log: r.log.clone(),
            };
            let client = self.args.client.clone();
            let timeout_ms = self.args.settings.rpc_timeout_ms;
            let myself = self.myself.clone();
            self.calls.spawn(async move {
                let answer = client.call(&owner, request, timeout_ms).await;
                if matches!(answer, Ok(WorkResponse::Ok)) {
                    let _ = myself.cast(WorkersMessage::Reported(id));
                } else {
                    // Sent again at the next tick, to whoever owns it then.
                    let _ = myself.cast(WorkersMessage::ReportFailed(id));
                    log_failure(id, answer.err());
                }
            });
        }
    }

    fn heartbeat(&mut self) {
        let mut by_queue: BTreeMap<String, Vec<(JobId, u32)>> = BTreeMap::new();
        for (id, r) in &self.running {
            by_queue
                .entry(r.spec.queue.clone())
                .or_default()
                .push((*id, r.attempt));
        }
        for (queue, jobs) in by_queue {
            let Some(owner) = self.owner(&queue) else {
                continue;
            };
            let request = WorkRequest::Heartbeat {
                worker: self.args.me.link_name(),
                queue,
                jobs,
            };
            let client = self.args.client.clone();
            let timeout_ms = self.args.settings.rpc_timeout_ms;
            let myself = self.myself.clone();
            self.calls.spawn(async move {
                if let Ok(WorkResponse::Abort(ids)) = client.call(&owner, request, timeout_ms).await
                {
                    if !ids.is_empty() {
                        let _ = myself.cast(WorkersMessage::Abort(ids));
                    }
                }
            });
        }
    }

    fn tick(&mut self) {
        while self.calls.try_join_next().is_some() {}
        while self.jobs.try_join_next().is_some() {}
        if self.calls.len() < 2 * self.args.settings.slots as usize + 16 {
            self.heartbeat();
            self.send_reports();
        }
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!("hypha_jobs_running").set(self.running.len() as f64);
        metrics::gauge!("hypha_jobs_unreported").set(self.unreported.len() as f64);
        if let Some(cell) = ractor::registry::where_is(self.args.membership.clone()) {
            let _ = cell.send_message(MembershipMessage::SetJobSlots {
                running: u32::try_from(self.running.len()).unwrap_or(u32::MAX),
                slots: self.args.settings.slots,
            });
        }
    }
}

/// How an attempt ended, from its handler's answer within the timeout.
fn outcome(
    ran: Result<Result<Vec<u8>, crate::handler::JobError>, tokio::time::error::Elapsed>,
) -> (AttemptEnd, Vec<u8>) {
    match ran {
        Ok(Ok(out)) if out.len() <= MAX_INLINE_BYTES => (AttemptEnd::Succeeded, out),
        Ok(Ok(out)) => (
            AttemptEnd::Failed(format!(
                "result of {} bytes exceeds {MAX_INLINE_BYTES}",
                out.len()
            )),
            Vec::new(),
        ),
        Ok(Err(e)) => (AttemptEnd::Failed(e.to_string()), Vec::new()),
        Err(_) => (AttemptEnd::TimedOut, Vec::new()),
    }
}

fn log_failure(id: JobId, err: Option<RpcError>) {
    if let Some(e) = err {
        tracing::debug!(job = %id, "report not acknowledged yet: {e}");
    }
}

impl Actor for Workers {
    type Msg = WorkersMessage;
    type State = WorkersState;
    type Arguments = WorkersArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkersMessage>,
        args: WorkersArgs,
    ) -> Result<WorkersState, ActorProcessingErr> {
        let every = Duration::from_millis(args.settings.heartbeat_ms.max(1));
        let ticker = myself.send_interval(every, || WorkersMessage::Tick);
        let state = WorkersState {
            args,
            myself,
            running: HashMap::new(),
            unreported: BTreeMap::new(),
            jobs: JoinSet::new(),
            calls: JoinSet::new(),
            ticker: Some(ticker),
        };
        state.publish();
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkersMessage>,
        state: &mut WorkersState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.ticker.take() {
            t.abort();
        }
        state.jobs.abort_all();
        state.calls.abort_all();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkersMessage>,
        message: WorkersMessage,
        state: &mut WorkersState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkersMessage::Request { request, reply } => state.request(*request, reply),
            WorkersMessage::Ended {
                id,
                attempt,
                end,
                result,
                log,
            } => state.ended(id, attempt, end, result, log),
            WorkersMessage::Tick => state.tick(),
            WorkersMessage::Reported(id) => {
                state.unreported.remove(&id);
            }
            WorkersMessage::ReportFailed(id) => {
                if let Some(r) = state.unreported.get_mut(&id) {
                    r.sending = false;
                }
            }
            WorkersMessage::Abort(ids) => {
                for id in ids {
                    state.abort(id);
                }
            }
            WorkersMessage::Crash => panic!("chaos: injected panic in the workers actor"),
        }
        Ok(())
    }
}
