//! The bit-rot nemesis: a node's disk returns wrong bytes. The node is
//! SIGKILLed, bits of its stopped store's files are flipped at seeded
//! offsets ([`hypha_testkit::bitrot`]), and it is started again. Either it
//! starts (sled recovered, perhaps dropping the tail of its log) or it
//! exits with the damaged-store status and its one line; then the
//! harness runs the command that line names, as an operator would, and
//! starts it on an empty store. Either way the fault ends when the node
//! has caught up on every partition it replicates — its answers count
//! toward read quorums again — so two replicas never rot at once.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hypha::node::DB_DIR;
use hypha_testkit::poll::poll;

use crate::cluster::{Nodes, StartOutcome};

/// Longest wait for a restarted node to catch up (1,024 partitions; on a
/// loaded 2-core machine it took up to 110 s).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(300);

/// What one bit-rot fault did.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotted {
    /// Bits flipped.
    pub flips: u32,
    /// Whether the store had to be quarantined.
    pub store: StoreFate,
    /// From the (last) start to every partition caught up, s.
    pub caught_up_s: f64,
}

/// How the rotted store fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFate {
    /// The node started on it.
    Started,
    /// The node exited with the damaged-store line; it was quarantined.
    Quarantined,
}

impl fmt::Display for Rotted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fate = match self.store {
            StoreFate::Started => "started on the rotted store",
            StoreFate::Quarantined => {
                "exited with the damaged-store line; store quarantined, started empty"
            }
        };
        write!(
            f,
            "flipped {} bit(s): {fate}; caught up in {:.1} s",
            self.flips, self.caught_up_s
        )
    }
}

/// Rot node `node`'s store and bring it back (module doc).
pub async fn rot(nodes: &Nodes, node: usize, flips: u32, seed: u64) -> anyhow::Result<Rotted> {
    nodes.kill(node)?;
    let data_dir = nodes.data_dir(node);
    hypha_testkit::bitrot::flip_bits(&data_dir.join(DB_DIR), flips, seed)
        .context("flipping bits")?;
    let store = match nodes.start_or_damaged(node).await? {
        StartOutcome::Serving => StoreFate::Started,
        StartOutcome::DamagedStore => {
            let command = damaged_line_command(&nodes.log_path(node))?;
            quarantine(&nodes.bin(), &command)?;
            nodes.start(node).await?;
            StoreFate::Quarantined
        }
    };
    let started = Instant::now();
    wait_caught_up(&nodes.url(node)).await?;
    Ok(Rotted {
        flips,
        store,
        caught_up_s: started.elapsed().as_secs_f64(),
    })
}

/// The command named by the node's damaged-store line, the last line of
/// its log: `… move it aside with `hypha store quarantine --data-dir D`, …`.
/// The line must be one line: its start and its command on the last.
fn damaged_line_command(log: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(log).context("reading the node log")?;
    let line = text.lines().last().unwrap_or_default();
    if !line.starts_with("hypha: the store at ") || !line.contains(" is damaged ") {
        bail!("exit status says damaged store, but the last log line is {line:?}");
    }
    // The last quoted part: sled's own message may quote too ("assertion
    // `left == right` failed").
    let command = line
        .rsplit('`')
        .nth(1)
        .filter(|c| c.starts_with("hypha store quarantine --data-dir "))
        .with_context(|| format!("no quarantine command in {line:?}"))?;
    Ok(command.to_owned())
}

/// Run the named command with our `hypha` binary.
fn quarantine(bin: &Path, command: &str) -> anyhow::Result<()> {
    let Some(data_dir) = command.strip_prefix("hypha store quarantine --data-dir ") else {
        bail!("not a quarantine command: {command:?}");
    };
    // The harness's paths need no shell quoting.
    let out = std::process::Command::new(bin)
        .args(["store", "quarantine", "--data-dir", data_dir])
        .output()
        .context("running hypha store quarantine")?;
    if !out.status.success() {
        bail!(
            "hypha store quarantine failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Poll until the node reports every partition it replicates caught up.
async fn wait_caught_up(url: &str) -> anyhow::Result<()> {
    let http = crate::workload::http()?;
    let url = format!("{url}/v1/dht/partitions");
    let (http, url) = (&http, &url);
    let caught_up = move || async move {
        let doc = crate::run::get_json(http, url).await?;
        let parts = doc["partitions"].as_array()?;
        let replica = parts.iter().filter(|p| p["role"] == "replica");
        (replica.clone().count() > 0 && replica.clone().all(|p| p["caught_up"] == true))
            .then_some(())
    };
    poll(CATCH_UP_LIMIT, Duration::from_millis(250), caught_up)
        .await
        .map_err(|_| anyhow::anyhow!("not caught up within {CATCH_UP_LIMIT:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_read_from_a_line_whose_cause_quotes_too() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n0.log");
        let line = "hypha: the store at /r/n0/db is damaged (sled panicked during recovery: \
            assertion `left == right` failed: left: 1 right: 2); move it aside with \
            `hypha store quarantine --data-dir /r/n0`, then start the node again";
        std::fs::write(&log, format!("INFO earlier\n{line}\n")).unwrap();
        assert_eq!(
            damaged_line_command(&log).unwrap(),
            "hypha store quarantine --data-dir /r/n0"
        );
        std::fs::write(&log, format!("{line}\n right: 2)\n")).unwrap();
        assert!(
            damaged_line_command(&log).is_err(),
            "a split line is refused"
        );
    }
}
