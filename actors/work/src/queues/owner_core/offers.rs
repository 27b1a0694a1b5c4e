//! Offers to workers: the candidates and what this owner knows of their
//! load, the plan chosen by the placement policy within the offer budget,
//! and the answer (a lease, or back to the queue with the decliner busy
//! for a few ticks).

use std::collections::{HashMap, HashSet};

use super::{abort_on, Effect, Effects, OwnerCore};
use crate::job::{JobId, JobSpec};
use crate::placement::{code_of, Candidate};
use crate::wire::{OfferAnswer, WorkRequest};
use hypha_cluster::membership::MemberKey;

/// A worker that declined an offer gets none for this many ticks.
const BUSY_TICKS: u64 = 5;

/// An offer about to be sent.
struct Planned {
    queue: String,
    id: JobId,
    spec: JobSpec,
    attempt: u32,
    worker: String,
}

impl<R> OwnerCore<R> {
    pub(super) fn in_flight_offers(&self) -> usize {
        self.owned.values().map(|o| o.book.stats(0).offered).sum()
    }

    /// Offer ready jobs to workers chosen by the policy, at most
    /// `max_offers_in_flight` outstanding. `holders` names the workers
    /// holding a replica of a stored input file (for the locality policy).
    pub fn dispatch(
        &mut self,
        now_ms: u64,
        holders: &dyn Fn(&str) -> HashSet<String>,
    ) -> Effects<R> {
        let mut fx = Vec::new();
        if self.owned.values().all(|o| o.book.queued() == 0) {
            return fx;
        }
        let budget = self
            .settings
            .max_offers_in_flight
            .saturating_sub(self.in_flight_offers());
        if budget == 0 {
            return fx;
        }
        for planned in self.plan(now_ms, budget, holders) {
            self.offer(now_ms, planned, &mut fx);
        }
        fx
    }

    fn plan(
        &self,
        now_ms: u64,
        budget: usize,
        holders: &dyn Fn(&str) -> HashSet<String>,
    ) -> Vec<Planned> {
        let mut candidates = self.candidates(now_ms);
        let mut offers: Vec<Planned> = Vec::new();
        for (queue, o) in &self.owned {
            for r in o.book.ready().take(budget) {
                if offers.len() >= budget || candidates.iter().all(|c| c.free() == 0) {
                    return offers;
                }
                let held = r.spec.payload.file().map(holders).unwrap_or_default();
                let code = code_of(&r.spec);
                for c in candidates.iter_mut() {
                    c.holds_input = held.contains(&c.worker);
                    c.warm = code.is_some_and(|code| self.warm.is_warm(code, &c.worker));
                }
                if let Some(i) = self.policy.choose(&r.spec, &candidates) {
                    candidates[i].busy += 1;
                    offers.push(Planned {
                        queue: queue.clone(),
                        id: r.id,
                        spec: r.spec.clone(),
                        attempt: r.attempts + 1,
                        worker: candidates[i].worker.clone(),
                    });
                }
            }
        }
        offers
    }

    fn offer(&mut self, now_ms: u64, planned: Planned, fx: &mut Effects<R>) {
        let Planned {
            queue,
            id,
            spec,
            attempt,
            worker,
        } = planned;
        let Some(o) = self.owned.get_mut(&queue) else {
            return;
        };
        if o.book.offer(&id, &worker, now_ms).is_err() {
            return;
        }
        let Some(member) = MemberKey::from_link_name(&worker) else {
            let _ = o.book.declined(&id, &worker, now_ms);
            return;
        };
        let request = WorkRequest::Offer {
            owner: self.me.link_name(),
            id,
            spec,
            attempt,
            lease_ms: self.settings.lease_ms,
        };
        fx.push(Effect::Offer {
            queue,
            id,
            worker,
            member,
            request,
        });
    }

    /// A worker answered an offer (or did not): lease, or back to the
    /// queue with the worker counted busy for a few ticks.
    pub fn offer_answered(
        &mut self,
        now_ms: u64,
        queue: &str,
        id: JobId,
        worker: &str,
        answer: Result<OfferAnswer, String>,
    ) -> Effects<R> {
        let mut fx = Vec::new();
        let Some(o) = self.owned.get_mut(queue) else {
            return fx;
        };
        match answer {
            Ok(OfferAnswer::Accepted) => {
                if let Some(code) = o.book.get(&id).and_then(|r| code_of(&r.spec)) {
                    self.warm.ran(code, worker);
                }
                if o.book.accepted(&id, worker, now_ms).is_err() {
                    // Cancelled or finished meanwhile.
                    abort_on(worker, id, &mut fx);
                }
            }
            other => {
                let _ = o.book.declined(&id, worker, now_ms);
                if let Err(why) = other {
                    tracing::debug!(job = %id, worker, "offer failed: {why}");
                }
                let busy_ms = BUSY_TICKS * self.settings.tick_ms;
                self.busy_until_ms
                    .insert(worker.to_owned(), now_ms + busy_ms);
            }
        }
        fx
    }

    /// Workers this owner may offer to, with what it knows of their load.
    fn candidates(&self, now_ms: u64) -> Vec<Candidate> {
        let mut ours: HashMap<String, u32> = HashMap::new();
        for worker in self.owned.values().flat_map(|o| o.book.holders()) {
            *ours.entry(worker.to_owned()).or_default() += 1;
        }
        self.placement
            .live()
            .iter()
            .filter_map(|m| self.view.member(&m.node_id).filter(|s| s.key == *m))
            .filter_map(|s| {
                let info = s.info.as_ref()?;
                let load = s.load.unwrap_or_default();
                let worker = s.key.link_name();
                let slots = if load.job_slots > 0 {
                    load.job_slots
                } else {
                    info.capacity.cores.max(1)
                };
                let mut busy = load
                    .jobs_running
                    .max(ours.get(&worker).copied().unwrap_or(0));
                if self.busy_until_ms.get(&worker).is_some_and(|t| *t > now_ms) {
                    busy = slots;
                }
                Some(Candidate {
                    worker,
                    cores: info.capacity.cores,
                    memory_bytes: info.capacity.memory_bytes,
                    free_disk_bytes: load.free_disk_bytes.max(info.capacity.free_disk_bytes),
                    labels: info.labels.clone(),
                    slots,
                    busy,
                    load_avg_1m: load.load_avg_1m,
                    holds_input: false,
                    warm: false,
                })
            })
            .collect()
    }
}
