//! What ends a lease or an offer without its worker's answer: the lease
//! period passing without a heartbeat, and the worker's node going Down.
//! Each job is queued again or dead-lettered.

use super::Book;
use crate::job::{AttemptEnd, JobId, JobRecord};

impl Book {
    /// Leases past their expiry: each job is queued again or
    /// dead-lettered. Offers unanswered for a lease period are withdrawn.
    pub fn expire(&mut self, now_ms: u64) -> Vec<JobRecord> {
        let stale: Vec<(JobId, String)> = self
            .in_flight_entries()
            .filter(|(_, e)| e.offered_ms + self.lease_ms <= now_ms)
            .filter_map(|(id, e)| Some((id, e.offered_to.clone()?)))
            .collect();
        for (id, worker) in stale {
            let _ = self.declined(&id, &worker, now_ms);
        }
        let expired: Vec<(JobId, u32)> = self
            .in_flight_entries()
            .filter_map(|(id, e)| match &e.lease {
                Some(l) if l.expires_ms <= now_ms => Some((id, l.attempt)),
                _ => None,
            })
            .collect();
        expired
            .into_iter()
            .filter_map(|(id, attempt)| {
                self.retry_or_dead(&id, attempt, AttemptEnd::LeaseExpired, now_ms)
            })
            .collect()
    }

    /// `worker`'s node is Down: its leases end now (queued again or
    /// dead-lettered) and its pending offers go back to the queue.
    pub fn worker_down(&mut self, worker: &str, now_ms: u64) -> Vec<JobRecord> {
        let offered: Vec<JobId> = self
            .in_flight_entries()
            .filter(|(_, e)| e.offered_to.as_deref() == Some(worker))
            .map(|(id, _)| id)
            .collect();
        for id in offered {
            let _ = self.declined(&id, worker, now_ms);
        }
        let leased: Vec<(JobId, u32)> = self
            .in_flight_entries()
            .filter_map(|(id, e)| match &e.lease {
                Some(l) if l.worker == worker => Some((id, l.attempt)),
                _ => None,
            })
            .collect();
        leased
            .into_iter()
            .filter_map(|(id, attempt)| {
                self.retry_or_dead(&id, attempt, AttemptEnd::NodeDown, now_ms)
            })
            .collect()
    }
}
