//! The book's invariants, checked by the property tests after every step:
//! the ready set holds exactly the queued jobs, the in-flight index
//! exactly the offered and running ones, and every record agrees with
//! its state (a lease in its history, a success behind Done, all
//! attempts used behind a dead letter).

use std::collections::{BTreeSet, HashMap};

use super::Book;
use crate::job::{AttemptEnd, JobId, JobState, MAX_HISTORY};

impl Book {
    /// Check the book's invariants; `Err` names the first one broken.
    pub fn check(&self) -> Result<(), String> {
        let queued: BTreeSet<JobId> = self
            .jobs
            .iter()
            .filter(|(_, e)| e.record.state == JobState::Queued)
            .map(|(id, _)| *id)
            .collect();
        let ready: BTreeSet<JobId> = self.ready.iter().map(|(_, _, id)| *id).collect();
        if ready.len() != self.ready.len() {
            return Err("a job is in the ready set twice".into());
        }
        if queued != ready {
            return Err(format!("queued {queued:?} but ready {ready:?}"));
        }
        let waiting: BTreeSet<(u64, JobId)> = queued
            .iter()
            .filter_map(|id| Some((self.jobs.get(id)?.queued_since_ms, *id)))
            .collect();
        if waiting != self.waiting {
            return Err(format!("waiting index {:?} ≠ {waiting:?}", self.waiting));
        }
        let holders: HashMap<JobId, String> = self
            .jobs
            .iter()
            .filter_map(|(id, e)| Some((*id, Self::holder_of(e)?.to_owned())))
            .collect();
        if holders != self.in_flight {
            return Err(format!(
                "in-flight index {:?} ≠ {holders:?}",
                self.in_flight
            ));
        }
        for (id, e) in &self.jobs {
            let state = e.record.state;
            if (state == JobState::Running) != e.lease.is_some() {
                return Err(format!("{id}: {state:?} with lease {:?}", e.lease));
            }
            if (state == JobState::Offered) != e.offered_to.is_some() {
                return Err(format!("{id}: {state:?} offered to {:?}", e.offered_to));
            }
            if (state == JobState::Queued) != e.ready.is_some() {
                return Err(format!("{id}: {state:?} with ready key {:?}", e.ready));
            }
            if let Some(l) = &e.lease {
                let open = e.record.history.iter().any(|a| {
                    a.number == l.attempt && a.worker == l.worker && a.end == AttemptEnd::Running
                });
                if !open && e.record.history.len() < MAX_HISTORY {
                    return Err(format!("{id}: lease {l:?} not in history"));
                }
            }
            if state == JobState::Done
                && !e
                    .record
                    .history
                    .iter()
                    .any(|a| a.end == AttemptEnd::Succeeded)
            {
                return Err(format!(
                    "{id}: done without a successful attempt in history"
                ));
            }
            if state == JobState::DeadLetter && e.record.attempts < e.record.spec.max_attempts {
                return Err(format!(
                    "{id}: dead-lettered after {} attempts",
                    e.record.attempts
                ));
            }
        }
        Ok(())
    }
}
