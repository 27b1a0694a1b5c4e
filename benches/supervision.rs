//! Supervision benchmarks.
//!
//! - `restart/worker`: a permanent worker panics; time until the restarted
//!   child (a new actor) answers a call. Includes the polling lookups through
//!   the supervisor, so it is an upper bound on the restart itself.
//! - `restart/store`: the same for the sled-backed store actor answering a read.
//! - `cast/one_actor`: casts per second into one actor.
//!
//! The measuring client runs as a task on the runtime's two workers, like
//! the OTP baseline's client process on its two schedulers.
//!
//! Before criterion runs, a fixed-size sample of each restart is taken and
//! its mean, p50 and p99 printed, since criterion reports no tail latency.
//! `benches/otp_restart.escript` measures the same restart in Erlang/OTP for
//! comparison (see docs/benchmarks.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use hypha_store::{SledEngine, Store, StoreArgs, StoreMessage, Tree};
use hypha_supervisors::{
    install_quiet_panic_hook, ChildSpec, CrashMessage, Strategy, Supervisor, SupervisorFlags,
    SupervisorRef,
};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};

const SAMPLES: usize = 2_000;
const CASTS: u64 = 100_000;

struct Echo;
enum EchoMsg {
    Ping(RpcReplyPort<u64>),
    Count,
    Crash,
}
impl ractor::Message for EchoMsg {}
impl CrashMessage for EchoMsg {
    fn crash() -> Self {
        EchoMsg::Crash
    }
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = u64;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<EchoMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }
    async fn handle(
        &self,
        _: ActorRef<EchoMsg>,
        msg: EchoMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EchoMsg::Ping(reply) => {
                let _ = reply.send(*count);
            }
            EchoMsg::Count => *count += 1,
            EchoMsg::Crash => panic!("bench crash"),
        }
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn flags() -> SupervisorFlags {
    SupervisorFlags::new(Strategy::OneForOne).intensity(u32::MAX, 1)
}

/// What a restarted child must answer to count as back.
trait Probe: Send + Sync {
    fn crash(&self, cell: &ActorCell);
    fn answers(&self, cell: ActorCell) -> impl std::future::Future<Output = bool> + Send;
}

struct EchoProbe;
impl Probe for EchoProbe {
    fn crash(&self, cell: &ActorCell) {
        cell.send_message(EchoMsg::Crash).unwrap();
    }
    async fn answers(&self, cell: ActorCell) -> bool {
        let r: ActorRef<EchoMsg> = cell.into();
        matches!(
            r.call(EchoMsg::Ping, Some(Duration::from_secs(1))).await,
            Ok(CallResult::Success(_))
        )
    }
}

struct StoreProbe;
impl Probe for StoreProbe {
    fn crash(&self, cell: &ActorCell) {
        cell.send_message(StoreMessage::Crash).unwrap();
    }
    async fn answers(&self, cell: ActorCell) -> bool {
        let r: ActorRef<StoreMessage> = cell.into();
        let got = r
            .call(
                |reply| StoreMessage::Get {
                    tree: Tree::Meta,
                    key: b"format_version".to_vec(),
                    reply,
                },
                Some(Duration::from_secs(1)),
            )
            .await;
        matches!(got, Ok(CallResult::Success(Ok(Some(_)))))
    }
}

async fn restart_once<P: Probe>(sup: &SupervisorRef, probe: &P) -> Duration {
    let old = sup.lookup(&["w"]).await.unwrap().unwrap();
    let started = Instant::now();
    probe.crash(&old);
    loop {
        if let Some(cell) = sup.lookup(&["w"]).await.unwrap() {
            if cell.get_id() != old.get_id() && probe.answers(cell).await {
                return started.elapsed();
            }
        }
        tokio::task::yield_now().await;
    }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| micros(*d)).sum::<f64>() / samples.len() as f64;
    let pick = |q: f64| micros(samples[((samples.len() - 1) as f64 * q) as usize]);
    println!(
        "{name}: n={} mean={mean:.1}µs p50={:.1}µs p99={:.1}µs max={:.1}µs",
        samples.len(),
        pick(0.5),
        pick(0.99),
        micros(samples[samples.len() - 1])
    );
}

async fn start<P: Probe>(spec: ChildSpec) -> SupervisorRef {
    let root = Supervisor::start_root(None, "bench", flags(), vec![spec])
        .await
        .unwrap();
    std::mem::forget(root.join);
    SupervisorRef::new(root.supervisor, Duration::from_secs(5))
}

fn echo_spec() -> ChildSpec {
    ChildSpec::actor("w", |_| (None, Echo, ())).crash_message::<EchoMsg>()
}

fn store_spec(engine: Arc<SledEngine>) -> ChildSpec {
    ChildSpec::actor("w", move |_| {
        let args = StoreArgs {
            engine: engine.clone(),
            reserve: hypha_store::DiskReserve {
                path: None,
                min_free_bytes: 0,
            },
        };
        (None, Store, args)
    })
    .crash_message::<StoreMessage>()
}

fn bench_restart<P: Probe + 'static>(c: &mut Criterion, name: &str, spec: ChildSpec, probe: P) {
    let rt = runtime();
    let sup = rt.block_on(start::<P>(spec));
    let probe = Arc::new(probe);
    let samples = on_worker(&rt, {
        let (sup, probe) = (sup.clone(), probe.clone());
        async move {
            let mut v = Vec::with_capacity(SAMPLES);
            for _ in 0..SAMPLES {
                v.push(restart_once(&sup, &*probe).await);
            }
            v
        }
    });
    report(name, samples);
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (sup, probe) = (sup.clone(), probe.clone());
            on_worker(&rt, async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += restart_once(&sup, &*probe).await;
                }
                total
            })
        })
    });
}

/// Run the measuring client as a task on the runtime's workers, as the OTP
/// baseline's client is a process on its schedulers. `block_on` would run it
/// on the bench's main thread instead, so that every hop to and from the
/// actors became a wake-up across threads and the figure measured that.
fn on_worker<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    client: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(rt.spawn(client)).unwrap()
}

fn bench_cast(c: &mut Criterion) {
    let rt = runtime();
    let actor = rt.block_on(async { Actor::spawn(None, Echo, ()).await.unwrap().0 });
    let mut group = c.benchmark_group("cast");
    group.throughput(Throughput::Elements(CASTS));
    group.bench_function("one_actor", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..CASTS {
                    actor.cast(EchoMsg::Count).unwrap();
                }
                // The call queues behind every cast: all were handled.
                actor.call(EchoMsg::Ping, None).await.unwrap()
            })
        })
    });
    group.finish();
}

fn main() {
    // As in the node: a subscriber is set, so the quiet hook logs through
    // tracing (here discarded) instead of writing every panic to stderr.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    install_quiet_panic_hook();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    bench_restart(&mut c, "restart/worker", echo_spec(), EchoProbe);
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(SledEngine::open(dir.path()).unwrap());
    bench_restart(&mut c, "restart/store", store_spec(engine), StoreProbe);
    bench_cast(&mut c);
    c.final_summary();
}
