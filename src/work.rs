//! Assembly of the node's work queues: the `work` supervisor's child specs
//! and the handle the HTTP layer uses to submit, inspect, list and cancel
//! jobs anywhere in the cluster.
//!
//! ```text
//! work (one_for_one)
//! ├── queues    owner side: books, durable log, leases, placement
//! ├── workers   bounded pool running job attempts
//! └── service   remotable endpoint peers call
//! ```
//! The children share nothing but the DHT and the placement channel, so
//! each restarts alone; a restarted owner reloads its queues from the log.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hypha_cluster::membership::{self, MemberKey, MembershipChannels};
use hypha_core::actor_name;
use hypha_core::clock::SharedClock;
use hypha_dht::files::{Files, FilesError, ListQuery, ReadConsistency};
use hypha_dht::placement::Placement;
use hypha_supervisors::{ChildSpec, Strategy, SupervisorFlags};
use hypha_wasm::WasmRuntime;
use hypha_work::chain::ChainStatus;
use hypha_work::client::{RpcError, WorkClient, WorkHandler};
use hypha_work::fanout::{MapPlan, MAX_MAP_INPUTS};
use hypha_work::handler::{JobInput, Registry};
use hypha_work::job::{JobId, JobRecord, JobSpec, JobState, Step};
use hypha_work::log::{JobLog, LogError};
use hypha_work::queues::{Queues, QueuesArgs, QueuesMessage};
use hypha_work::service::{work_group, WorkService, WorkServiceArgs};
use hypha_work::settings::WorkSettings;
use hypha_work::wasm::{WasmKind, MAX_MODULE_BYTES};
use hypha_work::wire::{ErrorCode, QueueFigures, WorkRequest, WorkResponse};
use hypha_work::workers::{Workers, WorkersArgs, WorkersMessage};
use hypha_work::{self as work, owner_of};
use thiserror::Error;
use tokio::sync::watch;

const WORK_MAX_RESTARTS: u32 = 5;
const WORK_PERIOD_MS: u64 = 10_000;
/// Calls between nodes.
const RPC_TIMEOUT_MS: u64 = 5_000;
/// A client request retries a moving or restarting owner this long.
const OWNER_RETRY_MS: u64 = 10_000;
const OWNER_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Why a jobs API call failed.
#[derive(Debug, Error)]
pub enum JobsError {
    /// The request is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No such job.
    #[error("{0}")]
    NotFound(String),
    /// The job's state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// No owner answered in time, or the DHT refused.
    #[error("{0}")]
    Unavailable(String),
}

impl From<LogError> for JobsError {
    fn from(e: LogError) -> Self {
        JobsError::Unavailable(e.to_string())
    }
}

/// What the admin API needs of the work queues.
#[derive(Clone)]
pub struct WorkAdmin {
    client: WorkClient,
    log: JobLog,
    files: Files,
    placement: watch::Receiver<Arc<Placement>>,
    registry: Registry,
    /// Defaults for submits.
    pub defaults: WorkSettings,
}

impl WorkAdmin {
    /// Kinds registered on this node.
    pub fn kinds(&self) -> Vec<String> {
        self.registry.kinds()
    }

    fn owner(&self, queue: &str) -> Result<MemberKey, JobsError> {
        owner_of(&self.placement.borrow(), queue)
            .ok_or_else(|| JobsError::Unavailable("no live member owns the queue".into()))
    }

    /// Ask the owner of `queue`, following ownership moves and restarts.
    async fn ask_owner(
        &self,
        queue: &str,
        request: WorkRequest,
    ) -> Result<WorkResponse, JobsError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(OWNER_RETRY_MS);
        loop {
            let owner = self.owner(queue)?;
            let err = match self
                .client
                .call(&owner, request.clone(), RPC_TIMEOUT_MS)
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(RpcError::Remote(e)) => match e.code {
                    ErrorCode::NotOwner | ErrorCode::Unavailable => e.to_string(),
                    ErrorCode::NotFound => return Err(JobsError::NotFound(e.message)),
                    ErrorCode::Conflict => return Err(JobsError::Conflict(e.message)),
                    _ => return Err(JobsError::BadRequest(e.message)),
                },
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(JobsError::Unavailable(format!("owner of {queue}: {err}")));
            }
            tokio::time::sleep(OWNER_RETRY_PAUSE).await;
        }
    }

    /// Submit; answered once the job is durable on W replicas. `true`:
    /// the idempotency key named an existing job.
    pub async fn submit(&self, spec: JobSpec) -> Result<(JobRecord, bool), JobsError> {
        spec.validate()
            .map_err(|e| JobsError::BadRequest(e.to_string()))?;
        let Some(handler) = self.registry.get(&spec.kind) else {
            return Err(JobsError::BadRequest(format!(
                "unknown kind `{}`; this node runs {:?}",
                spec.kind,
                self.kinds()
            )));
        };
        let id = match &spec.idempotency_key {
            Some(key) => JobId::for_key(&spec.queue, key),
            None => JobId::random(),
        };
        let mut job = JobInput::new(id, 0, spec, Some(self.files.clone()));
        handler
            .prepare(&mut job)
            .await
            .map_err(|e| JobsError::BadRequest(e.to_string()))?;
        let mut spec = job.spec;
        self.prepare_chain(&mut spec).await?;
        spec.validate()
            .map_err(|e| JobsError::BadRequest(e.to_string()))?;
        let queue = spec.queue.clone();
        match self
            .ask_owner(&queue, WorkRequest::Submit { id, spec })
            .await?
        {
            WorkResponse::Submitted { record, existing } => Ok((record, existing)),
            other => Err(JobsError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Submit, with each follow-up step checked (and completed: a wasm
    /// step's module is pinned) by its kind as the job itself is.
    async fn prepare_chain(&self, spec: &mut JobSpec) -> Result<(), JobsError> {
        for step in &mut spec.then {
            let Some(handler) = self.registry.get(&step.kind) else {
                return Err(JobsError::BadRequest(format!(
                    "then: unknown kind `{}`; this node runs {:?}",
                    step.kind,
                    self.kinds()
                )));
            };
            let mut probe = spec_for_step(&spec.queue, step);
            probe.timeout_ms = spec.timeout_ms;
            let mut job = JobInput::new(JobId([0; 16]), 0, probe, Some(self.files.clone()));
            handler
                .prepare(&mut job)
                .await
                .map_err(|e| JobsError::BadRequest(format!("then ({}): {e}", step.kind)))?;
            step.args = job.spec.args;
        }
        Ok(())
    }

    /// A chain's status, from the job that starts it: every step's state
    /// and worker, where it stopped and why.
    pub async fn chain(&self, id: JobId) -> Result<(ChainStatus, JobRecord), JobsError> {
        let mut records = vec![self.status(id).await?];
        while let Some(next) = records.last().and_then(hypha_work::chain::next_id) {
            if records.len() > hypha_work::job::MAX_CHAIN_STEPS {
                break;
            }
            match self.log.get(next).await? {
                Some(_) => records.push(self.status(next).await?),
                None => break,
            }
        }
        let status = hypha_work::chain::status(&records)
            .ok_or_else(|| JobsError::NotFound(format!("no job {id}")))?;
        let last = records
            .pop()
            .ok_or_else(|| JobsError::NotFound(format!("no job {id}")))?;
        Ok((status, last))
    }

    /// Fan `plan`'s module out over the stored files under its prefix:
    /// one job per input (at most [`MAX_MAP_INPUTS`]), 16 submits at a
    /// time. A re-run answers the jobs that exist.
    pub async fn map(&self, mut plan: MapPlan) -> Result<(MapPlan, Vec<Mapped>), JobsError> {
        let module = self.read_module(&plan.module).await?;
        plan.module_hash = blake3::hash(&module).to_hex().to_string();
        let inputs = self.inputs(&plan).await?;
        let plan_ref = &plan;
        let mapped = futures::stream::iter(inputs)
            .map(|input| async move {
                let outcome = self.submit(plan_ref.spec(&input)).await;
                Mapped { input, outcome }
            })
            .buffer_unordered(MAP_SUBMITS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        Ok((plan, mapped))
    }

    async fn read_module(&self, name: &str) -> Result<Vec<u8>, JobsError> {
        let opened = self
            .files
            .open(name, None, ReadConsistency::Available)
            .await
            .map_err(|e| match e {
                FilesError::NotFound(_) => JobsError::BadRequest(format!("module {name}: {e}")),
                e => JobsError::Unavailable(format!("module {name}: {e}")),
            })?;
        let mut body = opened.body;
        let mut bytes = Vec::new();
        while let Some(piece) = body.next().await {
            bytes.extend(piece.map_err(|e| JobsError::Unavailable(e.to_string()))?);
            if bytes.len() > MAX_MODULE_BYTES {
                return Err(JobsError::BadRequest(format!(
                    "module {name} is over {MAX_MODULE_BYTES} bytes"
                )));
            }
        }
        Ok(bytes)
    }

    /// The input files of `plan`, sorted; refused when the listing is
    /// incomplete (a partition did not answer) or too long.
    async fn inputs(&self, plan: &MapPlan) -> Result<Vec<String>, JobsError> {
        let mut query = ListQuery {
            prefix: plan.prefix.clone(),
            after: String::new(),
            limit: 1000,
            labels: Default::default(),
            min_size: None,
            max_size: None,
            modified_after_ms: None,
            modified_before_ms: None,
        };
        let mut inputs = Vec::new();
        loop {
            let (page, incomplete) = self
                .files
                .list(&query)
                .await
                .map_err(|e| JobsError::Unavailable(format!("listing {}: {e}", plan.prefix)))?;
            if incomplete {
                return Err(JobsError::Unavailable(format!(
                    "some partitions did not answer the listing of {}; retry",
                    plan.prefix
                )));
            }
            inputs.extend(
                page.entries
                    .into_iter()
                    .map(|e| e.name)
                    .filter(|n| plan.is_input(n)),
            );
            if inputs.len() > MAX_MAP_INPUTS {
                return Err(JobsError::BadRequest(format!(
                    "more than {MAX_MAP_INPUTS} files under {}; map a narrower prefix",
                    plan.prefix
                )));
            }
            match page.next_cursor {
                Some(cursor) => query.after = cursor,
                None => return Ok(inputs),
            }
        }
    }

    async fn stored(&self, id: JobId) -> Result<JobRecord, JobsError> {
        self.log
            .get(id)
            .await?
            .ok_or_else(|| JobsError::NotFound(format!("no job {id}")))
    }

    /// A job's record: the owner's live view while it runs, else the log's.
    pub async fn status(&self, id: JobId) -> Result<JobRecord, JobsError> {
        let stored = self.stored(id).await?;
        if stored.state.is_terminal() {
            return Ok(stored);
        }
        let request = WorkRequest::Status {
            queue: stored.spec.queue.clone(),
            id,
        };
        match self.ask_owner(&stored.spec.queue, request).await {
            Ok(WorkResponse::Record(Some(live))) => Ok(live),
            _ => Ok(stored),
        }
    }

    /// Jobs of `queue` (or every queue) in `state` (or any), oldest first.
    pub async fn list(
        &self,
        queue: Option<&str>,
        state: Option<JobState>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, JobsError> {
        let live_state = state.is_none_or(|s| !s.is_terminal());
        let mut out: Vec<JobRecord> = Vec::new();
        if let (Some(q), true) = (queue, live_state) {
            let request = WorkRequest::List {
                queue: q.to_owned(),
                state,
                limit,
            };
            if let WorkResponse::Records(r) = self.ask_owner(q, request).await? {
                out.extend(r);
            }
        }
        let stored_state = state.filter(|s| s.is_terminal());
        if state.is_none() || stored_state.is_some() || queue.is_none() {
            let (ids, _) = self.log.ids(queue, stored_state).await?;
            for id in ids.into_iter().take(limit as usize) {
                if out.iter().any(|r| r.id == id) {
                    continue;
                }
                if let Some(r) = self.log.get(id).await? {
                    if state.is_none_or(|s| s == r.state) {
                        out.push(r);
                    }
                }
            }
        }
        out.sort_by_key(|r| (r.submitted_ms, r.id));
        out.truncate(limit as usize);
        Ok(out)
    }

    /// Cancel a job that has not finished.
    pub async fn cancel(&self, id: JobId) -> Result<JobRecord, JobsError> {
        let stored = self.stored(id).await?;
        if stored.state.is_terminal() {
            return Err(JobsError::Conflict(format!(
                "job {id} is {}",
                stored.state.as_str()
            )));
        }
        let queue = stored.spec.queue.clone();
        match self
            .ask_owner(
                &queue,
                WorkRequest::Cancel {
                    queue: queue.clone(),
                    id,
                },
            )
            .await?
        {
            WorkResponse::Record(Some(r)) => Ok(r),
            other => Err(JobsError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Figures of every queue, from the live members that own them.
    pub async fn queues(&self) -> Result<Vec<QueueFigures>, JobsError> {
        let members = self.placement.borrow().live().to_vec();
        let calls = members.iter().map(|m| {
            let client = self.client.clone();
            async move { client.call(m, WorkRequest::Queues, RPC_TIMEOUT_MS).await }
        });
        let mut out: Vec<QueueFigures> = futures::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Ok(WorkResponse::Queues(q)) => Some(q),
                _ => None,
            })
            .flatten()
            .collect();
        let (registered, _) = self.log.queues().await?;
        for q in registered {
            if !out.iter().any(|f| f.queue == q) {
                out.push(QueueFigures {
                    queue: q,
                    ..QueueFigures::default()
                });
            }
        }
        out.sort_by(|a, b| a.queue.cmp(&b.queue).then(b.loaded.cmp(&a.loaded)));
        out.dedup_by(|a, b| a.queue == b.queue);
        Ok(out)
    }
}

/// Submits of one fan-out in flight at once.
const MAP_SUBMITS_IN_FLIGHT: usize = 16;

/// One input of a fan-out and how its submit went: the job (and whether
/// it existed already), or why it was refused.
pub struct Mapped {
    /// The input file.
    pub input: String,
    /// The job and `true` when it existed, or the refusal.
    pub outcome: Result<(JobRecord, bool), JobsError>,
}

/// A follow-up step as a job of its own (what its kind checks at submit).
fn spec_for_step(queue: &str, step: &Step) -> JobSpec {
    JobSpec {
        queue: queue.to_owned(),
        kind: step.kind.clone(),
        payload: hypha_work::job::Payload::Bytes(Vec::new()),
        args: step.args.clone(),
        idempotency_key: None,
        priority: 0,
        max_attempts: 1,
        timeout_ms: 1,
        constraints: Default::default(),
        then: Vec::new(),
    }
}

/// Everything the `work` supervisor's children are built from.
pub struct WorkParts {
    /// For the admin API.
    pub admin: WorkAdmin,
    node: String,
    queues: QueuesArgs,
    workers: WorkersArgs,
    service: WorkServiceArgs,
}

impl WorkParts {
    /// Build the parts for one node; `registry` adds kinds to the built-ins.
    // The node's facts, one per argument; the settings split (issue 24)
    // reshapes this constructor.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &WorkSettings,
        node: &str,
        me: MemberKey,
        files: Files,
        placement: watch::Receiver<Arc<Placement>>,
        membership: &MembershipChannels,
        cores: u32,
        clock: SharedClock,
    ) -> Result<Self, hypha_wasm::runtime::StartError> {
        let handler = WorkHandler::new(
            actor_name(node, work::QUEUES_ROLE),
            actor_name(node, work::WORKERS_ROLE),
            RPC_TIMEOUT_MS,
        );
        let client = WorkClient::new(me.clone(), handler.clone());
        let log = JobLog::new(files.clone());
        let mut registry = Registry::builtins(&settings.exec());
        if let Some(ceilings) = settings.wasm_ceilings() {
            let sandbox = WasmRuntime::new(ceilings, settings.wasm_cache_modules)?;
            registry.register("wasm", WasmKind::new(Arc::new(sandbox)));
        }
        let membership_name = actor_name(node, membership::ROLE);
        Ok(Self {
            admin: WorkAdmin {
                client: client.clone(),
                log: log.clone(),
                files: files.clone(),
                placement: placement.clone(),
                registry: registry.clone(),
                defaults: settings.clone(),
            },
            node: node.to_owned(),
            queues: QueuesArgs {
                me: me.clone(),
                log,
                client: client.clone(),
                placement: placement.clone(),
                view: membership.watch(),
                policy: settings.policy(),
                settings: settings.clone(),
                rpc_timeout_ms: RPC_TIMEOUT_MS,
                membership: membership_name.clone(),
                clock: clock.clone(),
            },
            workers: WorkersArgs {
                me: me.clone(),
                registry,
                files,
                client,
                placement,
                settings: settings.workers(cores, RPC_TIMEOUT_MS),
                membership: membership_name,
                clock,
            },
            service: WorkServiceArgs {
                group: work_group(&me),
                handler,
            },
        })
    }

    /// Add a job kind (embedding); call before [`WorkParts::spec`].
    pub fn register(&mut self, kind: &str, handler: impl hypha_work::handler::JobHandler) {
        self.workers.registry.register(kind, handler);
        self.admin.registry = self.workers.registry.clone();
    }

    /// [`WorkParts::register`] for a handler already shared.
    pub fn register_shared(
        &mut self,
        kind: &str,
        handler: std::sync::Arc<dyn hypha_work::handler::JobHandler>,
    ) {
        self.workers.registry.register_shared(kind, handler);
        self.admin.registry = self.workers.registry.clone();
    }

    /// The `work` supervisor.
    pub fn spec(&self) -> ChildSpec {
        let queues_name = actor_name(&self.node, work::QUEUES_ROLE);
        let queues_args = self.queues.clone();
        let queues = ChildSpec::actor("queues", move |_ctx| {
            (Some(queues_name.clone()), Queues, queues_args.clone())
        })
        .crash_message::<QueuesMessage>();
        let workers_name = actor_name(&self.node, work::WORKERS_ROLE);
        let workers_args = self.workers.clone();
        let workers = ChildSpec::actor("workers", move |_ctx| {
            (Some(workers_name.clone()), Workers, workers_args.clone())
        })
        .crash_message::<WorkersMessage>();
        // No crash message: the service's message type is a wire type.
        let service_name = actor_name(&self.node, work::SERVICE_ROLE);
        let service_args = self.service.clone();
        let service = ChildSpec::actor("service", move |_ctx| {
            (
                Some(service_name.clone()),
                WorkService::new(),
                service_args.clone(),
            )
        });
        let flags =
            SupervisorFlags::new(Strategy::OneForOne).intensity(WORK_MAX_RESTARTS, WORK_PERIOD_MS);
        ChildSpec::supervisor("work", flags, vec![queues, workers, service])
    }
}
