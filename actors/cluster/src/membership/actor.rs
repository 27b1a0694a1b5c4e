//! The membership actor's shell: runs chitchat, feeds its view to the
//! verdict layer ([`super::swim`]) every tick, runs the probes it asks for,
//! and publishes what it decides (gossip keys, events, the view, metrics).
//!
//! A restart rebuilds everything from the network: the node rejoins gossip
//! with the same generation and relearns the cluster within a few rounds.
//! The one thing carried over is how far its gossip had counted
//! ([`super::watermark`]): the new instance starts above it, or peers would
//! ignore it until it had counted that far again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::Transport;
use chitchat::{Chitchat, ChitchatHandle, ChitchatId, Heartbeat, NodeState};
use hypha_core::clock::SharedClock;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::seq::SliceRandom;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::MembershipConfig;
use super::info::{self, NodeLoad};
use super::messages::MembershipMessage;
use super::probe::{run_probe, ProbeTransport};
use super::swim::{Action, GossipNode, Swim, Verdict};
use super::transport::CountingTransport;
use super::view::{MemberKey, MemberState, MembershipChannels};
use super::watermark::{GossipWatermark, Resume};

/// How long a restarted incarnation retries binding the gossip port while
/// the previous incarnation's socket is being released.
const BIND_RETRY_MS: u64 = 2_000;

/// The membership behaviour.
pub struct Membership;

/// What each incarnation is given (built once per node).
#[derive(Clone)]
pub struct MembershipArgs {
    /// Settings.
    pub config: Arc<MembershipConfig>,
    /// Gossip transport (UDP in production, chitchat's channel transport in tests).
    pub gossip: Arc<dyn Transport>,
    /// How probes travel.
    pub probes: Arc<dyn ProbeTransport>,
    /// Where the view and events go.
    pub channels: MembershipChannels,
    /// Members with an authenticated node link (written by the peers actor).
    pub links: watch::Receiver<BTreeSet<MemberKey>>,
    /// How far this node's gossip has counted; outlives every incarnation.
    pub watermark: Arc<GossipWatermark>,
    /// The node's clock (SWIM timers, load refresh).
    pub clock: SharedClock,
    /// The node's labels as they are now (set through the admin API at
    /// run time); `None`: the configured `info.labels` for good. A change
    /// is published with the node's info on the next tick, so peers'
    /// placement sees a new zone (docs/dht.md, "Zones").
    pub labels: Option<watch::Receiver<BTreeMap<String, String>>>,
}

/// State of one incarnation.
pub struct MembershipState {
    args: MembershipArgs,
    chitchat: ChitchatHandle,
    swim: Swim,
    tasks: Vec<JoinHandle<()>>,
    probes: HashMap<MemberKey, JoinHandle<()>>,
    load: NodeLoad,
    job_queue_depth: u64,
    /// (running, slots) of the worker pool.
    job_slots: (u32, u32),
    next_load_at: Instant,
}

impl Drop for MembershipState {
    fn drop(&mut self) {
        // Runs after a panic or kill too (post_stop does not). The gossip
        // server may still hold the lock; the last tick's record then stands.
        if let Ok(mut chitchat) = self.chitchat.chitchat().try_lock() {
            record_watermark(&mut chitchat, &self.args.watermark);
        }
        self.chitchat.abort();
        for task in self.tasks.drain(..) {
            task.abort();
        }
        for (_, probe) in self.probes.drain() {
            probe.abort();
        }
    }
}

async fn spawn_gossip(args: &MembershipArgs) -> Result<ChitchatHandle, ActorProcessingErr> {
    let handle = bind_gossip(args).await?;
    let resume = args.watermark.resume();
    if let Some(resume) = resume {
        tracing::info!(
            heartbeat = resume.heartbeat,
            max_version = resume.max_version,
            "gossip restarted: resuming above the previous instance"
        );
    }
    let initial = [
        (info::KEY_INFO, info::encode_json(&current_info(args))),
        (info::KEY_INCARNATION, "0".to_owned()),
    ];
    handle
        .with_chitchat(|c| {
            if let Some(resume) = resume {
                resume_counters(c, resume);
            }
            // Written after the resume so their versions are above any a
            // peer holds, or peers would never ask for them.
            for (key, value) in &initial {
                c.self_node_state().set(*key, value);
            }
        })
        .await;
    Ok(handle)
}

/// Start this instance's counters above the ones its predecessor reached.
fn resume_counters(chitchat: &mut Chitchat, resume: Resume) {
    let state = chitchat.self_node_state();
    match heartbeat(resume.heartbeat) {
        Ok(heartbeat) => {
            state.try_set_heartbeat(heartbeat);
        }
        Err(err) => tracing::warn!("cannot resume the gossip heartbeat: {err}"),
    }
    let max_version = state.max_version().max(resume.max_version);
    state.set_max_version(max_version);
}

/// chitchat keeps `Heartbeat`'s constructor to itself; its serde form is
/// the bare number.
fn heartbeat(value: u64) -> Result<Heartbeat, serde_json::Error> {
    serde_json::from_value(serde_json::Value::from(value))
}

fn record_watermark(chitchat: &mut Chitchat, watermark: &GossipWatermark) {
    let state = chitchat.self_node_state();
    watermark.record(u64::from(state.heartbeat()), state.max_version());
}

/// Bind the gossip socket, retrying while a previous incarnation's socket
/// is being released.
async fn bind_gossip(args: &MembershipArgs) -> Result<ChitchatHandle, ActorProcessingErr> {
    let config = &args.config;
    let transport = CountingTransport::new(args.gossip.clone());
    let deadline = args.clock.now() + Duration::from_millis(BIND_RETRY_MS);
    loop {
        match chitchat::spawn_chitchat(config.chitchat(), Vec::new(), &transport).await {
            Ok(handle) => return Ok(handle),
            Err(err) if args.clock.now() < deadline => {
                tracing::debug!("gossip bind retry: {err:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => {
                return Err(format!("gossip on {}: {err:#}", config.gossip_listen).into());
            }
        }
    }
}

impl Actor for Membership {
    type Msg = MembershipMessage;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMessage>,
        args: MembershipArgs,
    ) -> Result<MembershipState, ActorProcessingErr> {
        let chitchat = spawn_gossip(&args).await?;
        let watcher = chitchat.termination_watcher();
        let me = myself.clone();
        let watch_task = tokio::spawn(async move {
            let reason = match watcher.await {
                Ok(()) => "gossip server stopped".to_owned(),
                Err(err) => format!("gossip server failed: {err:#}"),
            };
            let _ = me.cast(MembershipMessage::GossipStopped(reason));
        });
        let tick = Duration::from_millis(args.config.timing.tick_ms.max(1));
        let ticker = myself.send_interval(tick, || MembershipMessage::Tick);
        let swim = Swim::new(args.config.me.clone(), args.config.swim());
        tracing::info!(
            member = %args.config.me.link_name(),
            gossip = %args.config.gossip_listen,
            seeds = ?args.config.seeds,
            "membership started"
        );
        let next_load_at = args.clock.now();
        Ok(MembershipState {
            args,
            chitchat,
            swim,
            tasks: vec![watch_task, ticker],
            probes: HashMap::new(),
            load: NodeLoad::default(),
            job_queue_depth: 0,
            job_slots: (0, 0),
            next_load_at,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMessage>,
        message: MembershipMessage,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MembershipMessage::Tick => tick(&myself, state).await,
            MembershipMessage::ProbeDone { target, outcome } => {
                state.probes.remove(&target);
                tracing::debug!(member = %target.link_name(), ?outcome, "probe round done");
                let actions = state
                    .swim
                    .probe_done(state.args.clock.now(), &target, outcome);
                apply(&myself, state, actions).await;
                publish_view(state);
            }
            MembershipMessage::GossipStopped(reason) => return Err(reason.into()),
            MembershipMessage::Leave { reply } => {
                state.swim.leave();
                state
                    .chitchat
                    .with_chitchat(|c| c.self_node_state().set(info::KEY_LEAVING, "1"))
                    .await;
                tracing::info!("leaving: flag published");
                let _ = reply.send(());
            }
            MembershipMessage::SetJobQueueDepth(depth) => state.job_queue_depth = depth,
            MembershipMessage::SetJobSlots { running, slots } => {
                state.job_slots = (running, slots);
            }
            MembershipMessage::Crash => panic!("chaos: injected panic in membership"),
        }
        Ok(())
    }
}

/// The node's info with its labels as they are now.
fn current_info(args: &MembershipArgs) -> info::NodeInfo {
    let mut info = args.config.info.clone();
    if let Some(labels) = &args.labels {
        info.labels = labels.borrow().clone();
    }
    info
}

/// Publish the node's info again if its labels changed since last time.
async fn publish_labels(state: &mut MembershipState) {
    let changed = state
        .args
        .labels
        .as_mut()
        .is_some_and(|l| l.has_changed().unwrap_or(false));
    if !changed {
        return;
    }
    if let Some(labels) = state.args.labels.as_mut() {
        labels.mark_unchanged();
    }
    let encoded = info::encode_json(&current_info(&state.args));
    state
        .chitchat
        .with_chitchat(|c| c.self_node_state().set(info::KEY_INFO, encoded.clone()))
        .await;
    tracing::info!("labels changed: node info published again");
}

async fn tick(myself: &ActorRef<MembershipMessage>, state: &mut MembershipState) {
    publish_labels(state).await;
    let now = state.args.clock.now();
    if now >= state.next_load_at {
        refresh_load(state).await;
        state.next_load_at = now + Duration::from_millis(state.args.config.timing.load_refresh_ms);
    }
    let me = state.chitchat.chitchat_id().clone();
    let watermark = state.args.watermark.clone();
    let nodes = state
        .chitchat
        .with_chitchat(|c| {
            record_watermark(c, &watermark);
            let live: BTreeSet<ChitchatId> = c.live_nodes().cloned().collect();
            c.node_states()
                .iter()
                .filter(|(id, _)| **id != me)
                .map(|(id, node)| gossip_node(id, node, live.contains(id)))
                .collect::<Vec<_>>()
        })
        .await;
    let links = state.args.links.borrow().clone();
    let actions = state.swim.observe(now, nodes, &links);
    metrics::gauge!("hypha_membership_ignored_members").set(state.swim.ignored() as f64);
    metrics::gauge!("hypha_membership_contested_members").set(state.swim.contested() as f64);
    apply(myself, state, actions).await;
    publish_view(state);
}

async fn refresh_load(state: &mut MembershipState) {
    let dir = state.args.config.data_dir.clone();
    let depth = state.job_queue_depth;
    let Ok(mut load) =
        tokio::task::spawn_blocking(move || super::sysinfo::load(dir.as_deref(), depth)).await
    else {
        return;
    };
    (load.jobs_running, load.job_slots) = state.job_slots;
    state.load = load;
    let encoded = info::encode_json(&load);
    state
        .chitchat
        .with_chitchat(|c| c.self_node_state().set(info::KEY_LOAD, encoded.clone()))
        .await;
}

/// Read one member's gossip state; malformed values are logged and ignored.
fn gossip_node(id: &ChitchatId, node: &NodeState, live: bool) -> GossipNode {
    let key = MemberKey::new(id.node_id.to_string(), id.generation_id);
    let warn = |err: info::InfoError| {
        tracing::debug!(member = %key.link_name(), "ignoring gossip value: {err}");
    };
    let info = node
        .get(info::KEY_INFO)
        .and_then(|v| info::parse_info(v).map_err(warn).ok());
    let load = node
        .get(info::KEY_LOAD)
        .and_then(|v| info::parse_load(v).map_err(warn).ok());
    let incarnation = node
        .get(info::KEY_INCARNATION)
        .and_then(|v| info::parse_u64(info::KEY_INCARNATION, v).map_err(warn).ok())
        .unwrap_or(0);
    let verdicts = node
        .iter_prefix(info::PREFIX_DOWN)
        .filter_map(|(k, v)| {
            let (target, generation) = info::parse_down_key(k)?;
            let incarnation = info::parse_u64(k, &v.value).ok()?;
            Some(Verdict {
                target: MemberKey::new(target, generation),
                incarnation,
            })
        })
        .collect();
    GossipNode {
        gossip_addr: id.gossip_advertise_addr,
        heartbeat: u64::from(node.heartbeat()),
        live,
        incarnation,
        leaving: node.get(info::KEY_LEAVING).is_some(),
        info,
        load,
        verdicts,
        key,
    }
}

async fn apply(
    myself: &ActorRef<MembershipMessage>,
    state: &mut MembershipState,
    actions: Vec<Action>,
) {
    for action in actions {
        match action {
            Action::Event(event) => {
                tracing::info!(member = %event.key.link_name(), incarnation = event.incarnation, "{:?}", event.kind);
                state.args.channels.publish_event(event);
            }
            Action::Transition(to) => {
                metrics::counter!("hypha_membership_transitions_total", "to" => to.as_str())
                    .increment(1);
            }
            Action::Probe { target, helpers } => start_probe(myself, state, target, helpers),
            Action::PublishVerdict(Verdict {
                target,
                incarnation,
            }) => {
                tracing::warn!(member = %target.link_name(), incarnation, "declaring member down");
                let key = info::down_key(&target.node_id, target.generation);
                state
                    .chitchat
                    .with_chitchat(|c| c.self_node_state().set_with_ttl(key.clone(), incarnation))
                    .await;
            }
            Action::RetractVerdict(target) => {
                let key = info::down_key(&target.node_id, target.generation);
                state
                    .chitchat
                    .with_chitchat(|c| c.self_node_state().delete(&key))
                    .await;
            }
            Action::Refute(incarnation) => {
                tracing::warn!(incarnation, "refuting a Down verdict about this node");
                state
                    .chitchat
                    .with_chitchat(|c| c.self_node_state().set(info::KEY_INCARNATION, incarnation))
                    .await;
            }
            Action::Detected(after) => {
                metrics::histogram!("hypha_membership_detection_seconds")
                    .record(after.as_secs_f64());
            }
        }
    }
}

fn start_probe(
    myself: &ActorRef<MembershipMessage>,
    state: &mut MembershipState,
    target: MemberKey,
    mut helpers: Vec<MemberKey>,
) {
    helpers.shuffle(&mut rand::rng());
    let transport = state.args.probes.clone();
    let plan = state.args.config.probe_plan();
    let me = myself.clone();
    let key = target.clone();
    let task = tokio::spawn(async move {
        let outcome = run_probe(transport, key.clone(), helpers, plan).await;
        let _ = me.cast(MembershipMessage::ProbeDone {
            target: key,
            outcome,
        });
    });
    if let Some(previous) = state.probes.insert(target, task) {
        previous.abort();
    }
}

fn publish_view(state: &MembershipState) {
    let mut info = current_info(&state.args);
    info.capacity.free_disk_bytes = state.load.free_disk_bytes;
    let view = state
        .swim
        .view(state.args.clock.now(), Some(info), Some(state.load));
    for s in MemberState::ALL {
        let count = view.members.iter().filter(|m| m.state == s).count();
        metrics::gauge!("hypha_members", "state" => s.as_str()).set(count as f64);
    }
    state.args.channels.publish_view(view);
}
