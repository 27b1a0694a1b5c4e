//! The `hypha` binary.

use std::process::ExitCode;

use clap::Parser;
use hypha::cli::{Cli, Command, NodeArgs};
use hypha::config::{Mode, NodeConfig};
use hypha::node::{self, NodeExit};
use hypha::{secrets, telemetry};

/// Exit status when the root supervisor gave up (BSD `EX_SOFTWARE`).
const EXIT_ESCALATED: u8 = 70;
/// Exit status for bad configuration (BSD `EX_CONFIG`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => run_node(args),
    }
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
    let secrets = match secrets::resolve(&config.secrets, config.mode) {
        Ok(s) => s,
        Err(err) => {
            eprintln!("hypha: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("hypha: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let node = match node::start(&config, &secrets).await {
            Ok(n) => n,
            Err(err) => {
                eprintln!("hypha: cannot start node: {err}");
                return ExitCode::FAILURE;
            }
        };
        announce(&node, &config, &secrets);
        match node.run_until_signal().await {
            NodeExit::Stopped => {
                tracing::info!("node stopped");
                ExitCode::SUCCESS
            }
            NodeExit::Escalated(reason) => {
                tracing::error!("supervision tree gave up ({reason}); the node exits so that its service manager restarts it");
                ExitCode::from(EXIT_ESCALATED)
            }
            NodeExit::Killed => {
                tracing::error!("root supervisor was killed; exiting");
                ExitCode::FAILURE
            }
        }
    })
}

/// Tell the operator where the node is (stdout, one fact per line).
fn announce(node: &node::RunningNode, config: &NodeConfig, secrets: &secrets::Secrets) {
    println!(
        "hypha: node {} (id {}) generation {}",
        node.name, node.id, node.generation
    );
    println!("hypha: admin API at http://{}", node.http_addr);
    if config.mode == Mode::Dev {
        for (what, secret) in &secrets.generated {
            println!(
                "hypha: --dev generated a throwaway {what}: {}",
                secret.expose()
            );
        }
        if let Some((_, token)) = secrets.generated.iter().find(|(w, _)| *w == "admin token") {
            println!(
                "hypha: try: curl -H 'Authorization: Bearer {}' http://{}/v1/actors",
                token.expose(),
                node.http_addr
            );
        }
    }
}
