//! Which writes this node takes. A `StoreChunk` or `PutManifest` names a
//! partition; this node admits it only when it has business holding that
//! partition: it is one of the partition's replicas in its own placement,
//! it is within [`WRITE_SLACK`] places of being one, or it was one of
//! those within the last grace (`dht.down_grace_ms`). Anything else —
//! a sender that meant another node, or one that wants to park data here —
//! is refused with `NotReplica` and stores nothing.
//!
//! Why the slack and the memory. Placement is local, built from each
//! node's own view, and views differ for a few gossip rounds whenever the
//! member set moves. A coordinator (or a node handing off, or an
//! anti-entropy peer) picks targets from *its* view; the target judges by
//! *its* own. The target ranks itself worse than the sender did only
//! when it counts an owner closer to the partition that the sender does
//! not: a node that joined and that the sender has not linked yet, a
//! Down member whose grace the sender has already seen run out, a leaving
//! node the sender already counts as Left. One such change in flight puts
//! the target at rank R + 1: the slack. The opposite lag — the target
//! has stopped counting itself while the sender still does (it was pushed
//! out by a join the sender has not seen) — is what the memory covers:
//! for a grace after a partition stops being near, writes to it are still
//! taken (and handed off by anti-entropy like any data held off its set).
//! A node's first placement is [`crate::placement::Placement::alone`]
//! (every partition near), so for a grace after a start every partition
//! counts as recently held: a restart is a transition like the others.
//!
//! Pure: the router records the memory in each placement it publishes
//! ([`RoleHistory::advance`]); the request handler asks [`admit_write`]
//! with the time passed in.

use std::collections::BTreeMap;
use std::fmt;

use super::keyspace::Partition;
use super::placement::Placement;

/// Places beyond the R replicas at which a node still takes writes for a
/// partition: one membership change in flight between the sender's view
/// and this node's (docs/dht.md, "Who may write where").
pub const WRITE_SLACK: usize = 1;

/// Partitions that were near this node in an earlier placement and are
/// not now, with when they stopped being near (Unix ms). At most one
/// entry per partition, and entries older than the grace are dropped at
/// every step: bounded by the partition count, usually empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleHistory {
    left_at_ms: BTreeMap<u16, u64>,
}

impl RoleHistory {
    /// The memory after placement moved from `before` to `after` at
    /// `now_ms`: partitions near in `before` and not in `after` are
    /// remembered from now; the ones near again, or remembered for
    /// `grace_ms` already, are forgotten.
    pub fn advance(
        &self,
        before: &Placement,
        after: &Placement,
        now_ms: u64,
        grace_ms: u64,
    ) -> Self {
        let mut left_at_ms: BTreeMap<u16, u64> = self
            .left_at_ms
            .iter()
            .filter(|(_, at)| now_ms.saturating_sub(**at) < grace_ms)
            .map(|(p, at)| (*p, *at))
            .collect();
        for raw in 0..after.partitioning().count() {
            let Ok(raw) = u16::try_from(raw) else { break };
            let partition = Partition(raw);
            if is_near(after, partition) {
                left_at_ms.remove(&raw);
            } else if before.partitioning().contains(partition) && is_near(before, partition) {
                left_at_ms.insert(raw, now_ms);
            }
        }
        Self { left_at_ms }
    }

    /// When `partition` stopped being near, if it did within the grace.
    pub fn left_at_ms(&self, partition: Partition) -> Option<u64> {
        self.left_at_ms.get(&partition.0).copied()
    }

    /// Partitions remembered.
    pub fn len(&self) -> usize {
        self.left_at_ms.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.left_at_ms.is_empty()
    }
}

/// Within R + [`WRITE_SLACK`] of the partition in `placement`.
fn is_near(placement: &Placement, partition: Partition) -> bool {
    placement
        .rank_of_me(partition)
        .is_some_and(|rank| rank <= placement.replica_count() + WRITE_SLACK)
}

/// Why a write is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// This node is one of the partition's replicas.
    Replica,
    /// Within the slack: a sender's view may be one change away.
    Near {
        /// This node's place among the partition's owners (1 = closest).
        rank: usize,
    },
    /// Near within the grace: a sender's view may lag this node's.
    Recent {
        /// Since the partition stopped being near.
        ago_ms: u64,
    },
    /// Not this node's business.
    Refuse(Refusal),
}

/// A refused write, as the sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The partition written.
    pub partition: u16,
    /// This node's place among its owners (`None`: not an owner at all).
    pub rank: Option<usize>,
    /// Places that take writes (R + slack).
    pub within: usize,
    /// Grace of the memory, ms.
    pub grace_ms: u64,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.rank {
            Some(rank) => format!("is owner {rank} by distance"),
            None => "owns nothing".to_owned(),
        };
        write!(
            f,
            "not a replica of partition {}: this node {place} (writes taken within {}), \
             and was not within the last {} ms",
            self.partition, self.within, self.grace_ms
        )
    }
}

/// Whether this node takes a write to `partition`, by its `placement` (and
/// the memory recorded in it) at `now_ms`.
pub fn admit_write(partition: Partition, placement: &Placement, now_ms: u64) -> Admit {
    let rank = placement.rank_of_me(partition);
    let replicas = placement.replica_count();
    let within = replicas + WRITE_SLACK;
    match rank {
        Some(rank) if rank <= replicas => return Admit::Replica,
        Some(rank) if rank <= within => return Admit::Near { rank },
        _ => {}
    }
    let grace_ms = placement.write_grace_ms();
    if let Some(at) = placement.history().left_at_ms(partition) {
        let ago_ms = now_ms.saturating_sub(at);
        if ago_ms < grace_ms {
            return Admit::Recent { ago_ms };
        }
    }
    Admit::Refuse(Refusal {
        partition: partition.0,
        rank,
        within,
        grace_ms,
    })
}

#[cfg(test)]
pub(crate) mod tests;
