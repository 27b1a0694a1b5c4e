//! Which queues this node owns and what it knows of them: taking a queue
//! over (its book starts empty and fills from the log), reading the log,
//! the periodic scan of the queue registry, the reread of loaded logs, and
//! letting go of a queue now owned elsewhere.

use super::{Effect, Effects, Owned, OwnerCore};
use crate::book::Book;
use crate::job::JobRecord;

/// An owner reads each owned queue's log again every this many scans.
/// While ownership moves, two nodes can both believe they own a queue
/// for a moment; a job the old owner acknowledged after the new one
/// read the log would otherwise sit queued in the log with no owner
/// holding it (found by the chaos harness's worker-kill scenario). The
/// reread adds only records still queued when read by quorum, so a job
/// already done or held is never taken twice.
const RELOAD_EVERY_SCANS: u64 = 5;

impl<R> OwnerCore<R> {
    /// Take `queue` into this node's care (new queue, or takeover): its
    /// book starts empty and fills from the log.
    pub(super) fn ensure_owned(&mut self, queue: &str, fx: &mut Effects<R>) {
        if !self.owned.contains_key(queue) {
            tracing::info!(queue, "owning queue; loading its log");
            self.owned.insert(
                queue.to_owned(),
                Owned {
                    book: Book::new(self.settings.lease_ms),
                    loaded: false,
                    loading: false,
                    loaded_ms: 0,
                    dead_letters: 0,
                },
            );
            self.known.insert(queue.to_owned());
        }
        let load = self
            .owned
            .get(queue)
            .is_some_and(|o| !o.loaded && !o.loading);
        if load {
            self.start_load(queue, fx);
        }
    }

    pub(super) fn start_load(&mut self, queue: &str, fx: &mut Effects<R>) {
        if let Some(o) = self.owned.get_mut(queue) {
            o.loading = true;
            fx.push(Effect::Load {
                queue: queue.to_owned(),
            });
        }
    }

    /// A queue's log was read (`complete`: every member answered): its
    /// queued jobs join the book.
    pub fn loaded(
        &mut self,
        now_ms: u64,
        queue: &str,
        records: Vec<JobRecord>,
        dead_letters: u64,
        complete: bool,
    ) {
        let Some(o) = self.owned.get_mut(queue) else {
            return;
        };
        let mut added = 0;
        for r in records {
            if !r.state.is_terminal() && o.book.insert(r, now_ms).is_ok() {
                added += 1;
            }
        }
        o.loading = false;
        o.loaded = complete;
        o.loaded_ms = now_ms;
        o.dead_letters = o.dead_letters.max(dead_letters);
        if added > 0 || !complete {
            tracing::info!(queue, added, complete, "queue log loaded");
        }
        metrics::counter!("hypha_jobs_takeover_loaded_total").increment(added);
    }

    /// Timer: read the registry, unless a read is under way.
    pub fn scan(&mut self) -> Effects<R> {
        if self.scanning {
            return Vec::new();
        }
        self.scanning = true;
        vec![Effect::ReadRegistry]
    }

    /// The registry was read (`None`: the read failed): take over queues
    /// this node now owns, let go of those it no longer owns, retry
    /// incomplete loads and reread loaded logs every few scans.
    pub fn scanned(&mut self, now_ms: u64, queues: Option<Vec<String>>) -> Effects<R> {
        let mut fx = Vec::new();
        self.scanning = false;
        if let Some(queues) = queues {
            self.scanned_once = true;
            self.registered.extend(queues.iter().cloned());
            self.known.extend(queues);
        }
        let reload_ms = RELOAD_EVERY_SCANS * self.settings.scan_ms;
        let stale: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.loaded && !o.loading && now_ms >= o.loaded_ms + reload_ms)
            .map(|(q, _)| q.clone())
            .collect();
        for queue in stale {
            self.start_load(&queue, &mut fx);
        }
        let all: Vec<String> = self.known.iter().cloned().collect();
        for queue in all {
            if self.owns(&queue) {
                self.ensure_owned(&queue, &mut fx);
            } else if self.owned.remove(&queue).is_some() {
                // Its workers heartbeat to the new owner, which adopts
                // their jobs; nothing here needs to be written.
                tracing::info!(queue, "queue now owned elsewhere; letting go");
            }
        }
        fx
    }
}
