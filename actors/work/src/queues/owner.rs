//! The queues actor's I/O: it hands each message to the pure
//! [`OwnerCore`] with the time read from the node's clock, and carries out
//! the effects the core returns — replies, DHT reads and writes, and calls
//! to workers — in the actor's task set, each reporting back by message.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use hypha_dht::files::ReadConsistency;
use ractor::{ActorRef, RpcReplyPort};
use tokio::task::JoinSet;

use super::actor::QueuesArgs;
use super::messages::QueuesMessage;
use super::owner_core::{Effect, Gauges, OwnerCore};
use crate::job::{JobRecord, JobState};
use crate::wire::{WorkRequest, WorkResponse};
use hypha_cluster::membership::MemberKey;

/// Records read at once while loading a queue.
const LOAD_CONCURRENCY: usize = 16;

/// The actor's state: the core and the tasks carrying out its effects.
pub struct Owner {
    args: QueuesArgs,
    myself: ActorRef<QueuesMessage>,
    core: OwnerCore<RpcReplyPort<WorkResponse>>,
    /// Timers, aborted on stop.
    pub timers: Vec<tokio::task::JoinHandle<()>>,
    /// DHT writes, loads and calls to workers.
    pub tasks: JoinSet<()>,
}

impl Owner {
    /// A node that owns nothing yet.
    pub fn new(args: QueuesArgs, myself: ActorRef<QueuesMessage>) -> Self {
        let core = OwnerCore::new(
            args.me.clone(),
            args.settings.clone(),
            args.policy.clone(),
            args.placement.borrow().clone(),
            args.view.borrow().clone(),
        );
        Self {
            args,
            myself,
            core,
            timers: Vec::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Hand one message to the core (with the current placement, view and
    /// time) and carry out what it decides.
    pub fn handle(&mut self, message: QueuesMessage) {
        self.core.observe(
            self.args.placement.borrow().clone(),
            self.args.view.borrow().clone(),
        );
        let now_ms = self.args.clock.wall_ms();
        let effects = match message {
            QueuesMessage::Request { request, reply } => self.core.request(now_ms, request, reply),
            QueuesMessage::Tick => return self.tick(now_ms),
            QueuesMessage::Scan => self.core.scan(),
            QueuesMessage::Scanned(queues) => self.core.scanned(now_ms, queues),
            QueuesMessage::Loaded {
                queue,
                records,
                dead_letters,
                complete,
            } => {
                self.core
                    .loaded(now_ms, &queue, records, dead_letters, complete);
                Vec::new()
            }
            QueuesMessage::Submitted {
                record,
                existing,
                result,
                reply,
            } => self.core.submitted(now_ms, record, existing, result, reply),
            QueuesMessage::Persisted { record, ok, next } => {
                let mut fx = self.core.persisted(record, ok);
                if let (true, Some(next)) = (ok, next) {
                    fx.extend(self.core.chained(now_ms, *next));
                }
                fx
            }
            QueuesMessage::OfferAnswered {
                queue,
                id,
                worker,
                answer,
            } => self
                .core
                .offer_answered(now_ms, &queue, id, &worker, answer),
            QueuesMessage::Crash => panic!("chaos: injected panic in the queues actor"),
        };
        self.carry(effects);
    }

    /// Timer: expire leases, requeue Down workers' jobs, retry writes,
    /// place jobs (timed, per offer), publish gauges.
    fn tick(&mut self, now_ms: u64) {
        let effects = self.core.tick(now_ms);
        self.carry(effects);
        let started = self.args.clock.now();
        let files = self.args.log.files();
        let holders = |name: &str| -> HashSet<String> {
            files
                .placement_of(name)
                .1
                .iter()
                .map(MemberKey::link_name)
                .collect()
        };
        let offers = self.core.dispatch(now_ms, &holders);
        if !offers.is_empty() {
            let elapsed = self.args.clock.now().duration_since(started);
            metrics::histogram!("hypha_jobs_placement_seconds")
                .record(elapsed.as_secs_f64() / offers.len() as f64);
        }
        self.carry(offers);
        let gauges = self.core.gauges(now_ms);
        self.carry(vec![gauges]);
    }

    fn carry(&mut self, effects: Vec<Effect<RpcReplyPort<WorkResponse>>>) {
        for effect in effects {
            match effect {
                Effect::Reply { to, answer } => {
                    let _ = to.send(answer);
                }
                Effect::Load { queue } => self.load(queue),
                Effect::Submit {
                    record,
                    register,
                    reply,
                } => self.submit(record, register, reply),
                Effect::Write { record, next } => self.write(record, next),
                Effect::Offer {
                    queue,
                    id,
                    worker,
                    member,
                    request,
                } => self.offer(queue, id, worker, member, request),
                Effect::Abort { member, id } => self.abort(member, id),
                Effect::ReadRegistry => self.read_registry(),
                Effect::Gauges(g) => self.publish(g),
            }
        }
    }

    fn load(&mut self, queue: String) {
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let (records, dead_letters, complete) = load(&log, &queue).await;
            let _ = myself.cast(QueuesMessage::Loaded {
                queue,
                records,
                dead_letters,
                complete,
            });
        });
    }

    fn submit(&mut self, record: JobRecord, register: bool, reply: RpcReplyPort<WorkResponse>) {
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let message = write_submit(&log, record, register, reply).await;
            let _ = myself.cast(message);
        });
    }

    fn write(&mut self, record: JobRecord, next: Option<Box<JobRecord>>) {
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let written = write_chained(&log, &record, next).await;
            let (ok, next) = match written {
                Ok(next) => (true, next),
                Err(e) => {
                    tracing::warn!(job = %record.id, "job record not written: {e}");
                    (false, None)
                }
            };
            let _ = myself.cast(QueuesMessage::Persisted { record, ok, next });
        });
    }

    fn offer(
        &mut self,
        queue: String,
        id: crate::job::JobId,
        worker: String,
        member: MemberKey,
        request: WorkRequest,
    ) {
        let client = self.args.client.clone();
        let timeout_ms = self.args.rpc_timeout_ms;
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let answer = match client.call(&member, request, timeout_ms).await {
                Ok(WorkResponse::Offer(a)) => Ok(a),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            let _ = myself.cast(QueuesMessage::OfferAnswered {
                queue,
                id,
                worker,
                answer,
            });
        });
    }

    fn abort(&mut self, member: MemberKey, id: crate::job::JobId) {
        let client = self.args.client.clone();
        let timeout_ms = self.args.rpc_timeout_ms;
        self.tasks.spawn(async move {
            // Best effort: a worker that misses it learns at its next heartbeat.
            let _ = client
                .call(&member, WorkRequest::Abort { id }, timeout_ms)
                .await;
        });
    }

    fn read_registry(&mut self) {
        let log = self.args.log.clone();
        let myself = self.myself.clone();
        self.tasks.spawn(async move {
            let queues = log.queues().await.ok().map(|(q, _)| q);
            let _ = myself.cast(QueuesMessage::Scanned(queues));
        });
    }

    fn publish(&self, g: Gauges) {
        metrics::gauge!("hypha_jobs_queued").set(g.queued as f64);
        metrics::gauge!("hypha_jobs_in_flight").set(g.in_flight as f64);
        metrics::gauge!("hypha_jobs_dead_letters").set(g.dead_letters as f64);
        metrics::gauge!("hypha_jobs_owned_queues").set(g.owned_queues as f64);
        if let Some(cell) = ractor::registry::where_is(self.args.membership.clone()) {
            let _ = cell.send_message(
                hypha_cluster::membership::MembershipMessage::SetJobQueueDepth(g.queued),
            );
        }
    }
}

/// Make a submitted job durable: a job whose idempotency key names one
/// already in the log is answered with that one; the queue is registered
/// first if the owner has not seen it in the registry.
/// Write `record`, first making the next step of its chain durable unless
/// the log (read by quorum, so a step that ran is never reset) holds it.
/// Answers the next step as the log holds it.
async fn write_chained(
    log: &crate::log::JobLog,
    record: &JobRecord,
    next: Option<Box<JobRecord>>,
) -> Result<Option<Box<JobRecord>>, crate::log::LogError> {
    let next = match next {
        None => None,
        Some(next) => match log.get_with(next.id, ReadConsistency::Quorum).await? {
            Some(stored) => Some(Box::new(stored)),
            None => {
                log.put(&next).await?;
                Some(next)
            }
        },
    };
    log.put(record).await?;
    Ok(next)
}

async fn write_submit(
    log: &crate::log::JobLog,
    record: JobRecord,
    register: bool,
    reply: RpcReplyPort<WorkResponse>,
) -> QueuesMessage {
    if record.spec.idempotency_key.is_some() {
        match log.get(record.id).await {
            Ok(Some(record)) => {
                return QueuesMessage::Submitted {
                    record,
                    existing: true,
                    result: Ok(()),
                    reply,
                }
            }
            Ok(None) => {}
            Err(e) => {
                return QueuesMessage::Submitted {
                    record,
                    existing: false,
                    result: Err(e.to_string()),
                    reply,
                }
            }
        }
    }
    let mut result = Ok(());
    if register {
        result = log
            .register_queue(&record.spec.queue)
            .await
            .map_err(|e| e.to_string());
    }
    if result.is_ok() {
        result = log.put(&record).await.map_err(|e| e.to_string());
    }
    QueuesMessage::Submitted {
        record,
        existing: false,
        result,
        reply,
    }
}

/// Read a queue's queued records and count its dead letters.
async fn load(log: &crate::log::JobLog, queue: &str) -> (Vec<JobRecord>, u64, bool) {
    let (ids, mut complete) = match log.ids(Some(queue), Some(JobState::Queued)).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(queue, "cannot list the queue's log: {e}");
            return (Vec::new(), 0, false);
        }
    };
    let dead = match log.ids(Some(queue), Some(JobState::DeadLetter)).await {
        Ok((d, c)) => {
            complete &= c;
            d.len() as u64
        }
        Err(_) => 0,
    };
    let log = Arc::new(log.clone());
    let reads: Vec<Option<JobRecord>> = futures::stream::iter(ids)
        .map(|id| {
            let log = log.clone();
            async move { log.get(id).await }
        })
        .buffer_unordered(LOAD_CONCURRENCY)
        .map(|r| match r {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!("cannot read a job record: {e}");
                None
            }
        })
        .collect()
        .await;
    let failed = reads.iter().filter(|r| r.is_none()).count();
    let records: Vec<JobRecord> = reads.into_iter().flatten().collect();
    (records, dead, complete && failed == 0)
}
