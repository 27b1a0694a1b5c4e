//! The `hypha` binary.

use std::process::ExitCode;

use clap::Parser;
use hypha::cli::{
    CertCommand, Cli, ClusterCommand, Command, MembersArgs, NodeArgs, RestartArgs, StoreCommand,
    TokenCommand, UpArgs,
};
use hypha::commands;
use hypha::config::{LinkSecurity, Mode, NodeConfig};
use hypha::node::{self, NodeExit};
use hypha::{secrets, telemetry};

/// Exit status when the root supervisor gave up (BSD `EX_SOFTWARE`).
const EXIT_ESCALATED: u8 = 70;
/// Exit status for bad configuration (BSD `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => run_node(*args),
        Command::Cluster(ClusterCommand::Up(args)) => run_client(cluster_up(args)),
        Command::Cluster(ClusterCommand::Restart(args)) => run_client(cluster_restart(args)),
        Command::Members(args) => run_client(members(args)),
        Command::Cert(cmd) => run_client(async move {
            match cmd {
                CertCommand::Ca { dir } => commands::cert::ca(&dir),
                CertCommand::Node {
                    ca_dir,
                    name,
                    out,
                    data_dir,
                    node_id,
                } => {
                    let subject = commands::cert::NodeSubject::from_args(data_dir, node_id)?;
                    let id = commands::cert::node(&ca_dir, &name, &out, subject)?;
                    println!("certificate for node {id} ({name}) in {}", out.display());
                    Ok(())
                }
                CertCommand::Admin { ca_dir, hosts, out } => {
                    let hosts = commands::cert::admin(&ca_dir, &hosts, &out)?;
                    println!(
                        "hypha: admin certificate for {} in {}; clients: --ca {}",
                        hosts.join(", "),
                        out.display(),
                        out.join(hypha_cluster::peers::tls::CA_FILE).display()
                    );
                    Ok(())
                }
            }
        }),
        Command::Store(StoreCommand::Quarantine { data_dir }) => run_client(async move {
            let done = commands::store::quarantine(&data_dir, std::time::SystemTime::now())?;
            println!(
                "hypha: moved the store to {}; the node starts with an empty store, keeps its id and is refilled from its replicas (delete the moved copy when you no longer need it)",
                done.moved_to.display()
            );
            Ok(())
        }),
        Command::Token(cmd) => run_client(async move {
            match cmd {
                TokenCommand::Key { out } => commands::token::key(&out),
                TokenCommand::Create {
                    key_file,
                    role,
                    subject,
                    ttl,
                    cluster_id,
                } => commands::token::create(&key_file, role, &subject, ttl, &cluster_id),
            }
        }),
        Command::Put(args) => run_client(commands::files::put(args)),
        Command::Get(args) => run_client(commands::files::get(args)),
        Command::Ls(args) => run_client(commands::files::ls(args)),
        Command::Stat(args) => run_client(commands::files::stat(args)),
        Command::Rm(args) => run_client(commands::files::rm(args)),
        Command::Jobs(cmd) => run_client(commands::jobs::run(cmd)),
        Command::Queues(args) => run_client(commands::jobs::queues(args)),
        Command::S3(cmd) => run_client(commands::s3::run(cmd)),
        Command::Backup(cmd) => run_client(commands::backup::run(cmd)),
    }
}

/// Build a runtime, or say why not.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(err) => {
            eprintln!("hypha: cannot start the async runtime: {err}");
            None
        }
    }
}

fn run_client(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hypha: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn cluster_up(args: UpArgs) -> anyhow::Result<()> {
    commands::cluster_up::run(commands::cluster_up::UpPlan {
        nodes: args.nodes,
        dir: args.dir,
        base_port: args.base_port,
        cluster_id: args.cluster_id,
        links: if args.plaintext_links {
            LinkSecurity::Plaintext
        } else {
            LinkSecurity::MutualTls
        },
        prometheus: args.prometheus,
        admin: if args.https {
            commands::cluster_up::AdminScheme::Https
        } else {
            commands::cluster_up::AdminScheme::Http
        },
    })
    .await
}

async fn cluster_restart(args: RestartArgs) -> anyhow::Result<()> {
    if !args.rolling {
        anyhow::bail!("only --rolling is supported: restarting every node at once would take the cluster down");
    }
    let api = args.api;
    // Each request is bounded by the client; a step by --step-timeout-s.
    let client = commands::client(api.ca.as_deref())?;
    let cluster = hypha::rolling::ClusterApi::new(client, &api.url, api.token.clone());
    let step_timeout_ms = args.step_timeout_s.saturating_mul(1_000);
    let mut runner = hypha::rolling::Runner::new(cluster, None, step_timeout_ms);
    let mut failed = None;
    while let Some(event) = runner.step().await {
        let event = event?;
        if api.json {
            println!("{}", serde_json::to_string(&event)?);
        } else {
            println!("{}", commands::rolling_line(&event));
        }
        if let hypha::rolling::Event::Failed { reason } = event {
            failed = Some(reason);
        }
    }
    match failed {
        Some(reason) => anyhow::bail!("rolling restart stopped: {reason}"),
        None => Ok(()),
    }
}

async fn members(args: MembersArgs) -> anyhow::Result<()> {
    let api = args.api;
    let client = commands::client(api.ca.as_deref())?;
    let doc = commands::members::fetch(&client, &api.url, api.token.as_deref(), api.ca.as_deref())
        .await?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", commands::members::table(&doc));
    }
    Ok(())
}

fn run_node(args: NodeArgs) -> ExitCode {
    let config = match NodeConfig::resolve(&args) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("hypha: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    telemetry::init_logging(config.log_format);
    hypha_supervisors::install_quiet_panic_hook();
    let secrets = match secrets::resolve(&config.secrets, config.mode, &config.cluster.id) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("hypha: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    let exit = runtime.block_on(async move {
        let node = match node::start(&config, &secrets).await {
            Ok(n) => n,
            Err(err @ node::NodeError::DamagedStore { .. }) => {
                eprintln!("hypha: {err}");
                return ExitCode::from(node::EXIT_DAMAGED_STORE).into();
            }
            Err(err) => {
                eprintln!("hypha: cannot start node: {err}");
                return ExitCode::FAILURE.into();
            }
        };
        announce(&node, &config, &secrets);
        let node_bound = node.bound;
        match node.run_until_signal().await {
            NodeExit::Stopped => {
                tracing::info!("node stopped");
                ExitCode::SUCCESS.into()
            }
            NodeExit::Restart => Ended::Restart(restart_env(&secrets), node_bound),
            NodeExit::Escalated(reason) => {
                tracing::error!("supervision tree gave up ({reason}); the node exits so that its service manager restarts it");
                ExitCode::from(EXIT_ESCALATED).into()
            }
            NodeExit::Killed => {
                tracing::error!("root supervisor was killed; exiting");
                ExitCode::FAILURE.into()
            }
        }
    });
    // The runtime is dropped first: every task, socket and the store's
    // file lock are gone before the new image starts.
    drop(runtime);
    match exit {
        Ended::Exit(code) => code,
        Ended::Restart(env, bound) => reexec(env, &bound),
    }
}

/// How a node's run ended.
enum Ended {
    /// Exit with this code.
    Exit(ExitCode),
    /// Start again (`POST /v1/node/restart`), with these variables set,
    /// on the addresses bound.
    Restart(Vec<(&'static str, String)>, hypha::config::Listen),
}

impl From<ExitCode> for Ended {
    fn from(code: ExitCode) -> Self {
        Ended::Exit(code)
    }
}

/// Secrets `--dev` generated, as the variables that hand them to the
/// restarted program: a throwaway cookie made anew would lock the node
/// out of its own cluster.
fn restart_env(secrets: &secrets::Secrets) -> Vec<(&'static str, String)> {
    secrets
        .generated
        .iter()
        .filter_map(|(what, secret)| {
            let var = match *what {
                "cluster cookie" => "HYPHA_COOKIE",
                "admin token" => "HYPHA_ADMIN_TOKEN",
                _ => return None,
            };
            Some((var, secret.expose().to_owned()))
        })
        .collect()
}

/// Replace this process with a fresh run of the program as it was
/// invoked (`argv[0]`, looked up like the shell did: a binary replaced on
/// disk since — an upgrade — is the one that starts) with the same
/// arguments; same pid, so a service manager or `hypha cluster up` sees
/// no exit. Only returns if the exec failed.
fn reexec(mut env: Vec<(&'static str, String)>, bound: &hypha::config::Listen) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let program = match std::env::args_os().next() {
        Some(p) => std::path::PathBuf::from(p),
        None => match std::env::current_exe() {
            Ok(p) => p,
            Err(err) => {
                eprintln!("hypha: cannot restart: where is this program? {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    let (args, listen) =
        hypha::launch::restart_command(std::env::args_os().skip(1).collect(), bound);
    env.extend(listen);
    tracing::info!("restarting: exec {}", program.display());
    let err = std::process::Command::new(&program)
        .args(args)
        .envs(env)
        .exec();
    eprintln!("hypha: cannot restart {}: {err}", program.display());
    ExitCode::FAILURE
}

/// Tell the operator where the node is (stdout, one fact per line).
fn announce(node: &node::RunningNode, config: &NodeConfig, secrets: &secrets::Secrets) {
    println!(
        "hypha: node {} (id {}) generation {}",
        node.name, node.id, node.generation
    );
    println!("hypha: admin API at {}", node.admin_url());
    if let Some(s3) = node.s3_url() {
        println!("hypha: S3 endpoint at {s3} (keys: hypha s3 key create)");
    }
    let lone = if config.dht.replicas == 1 && config.seeds.is_empty() {
        " (a lone node: one copy of each file; [dht] replicas and write_quorum change it)"
    } else {
        ""
    };
    println!(
        "hypha: replication R = {}, W = {}{lone}",
        config.dht.replicas, config.dht.write_quorum
    );
    if config.mode == Mode::Dev {
        for (what, secret) in &secrets.generated {
            println!(
                "hypha: --dev generated a throwaway {what}: {}",
                secret.expose()
            );
        }
        if let Some((_, token)) = secrets.generated.iter().find(|(w, _)| *w == "admin token") {
            // `hypha cert admin` leaves the CA beside the certificate.
            let cacert = match &config.http.tls_dir {
                Some(dir) => format!(
                    "--cacert {} ",
                    dir.join(hypha_cluster::peers::tls::CA_FILE).display()
                ),
                None => String::new(),
            };
            println!(
                "hypha: try: curl {cacert}-H 'Authorization: Bearer {}' {}/v1/actors",
                token.expose(),
                node.admin_url()
            );
        }
    }
}
