//! One quorum call as a pure state machine: which replicas to ask, when,
//! and when the call is over. It owns the pacing rules of docs/dht.md —
//! a write asks every replica at once and waits `straggler_ms` past its
//! quorum; a read asks only the quorum (local first), the next replica at
//! once for each answer that fails or does not count, and all the rest
//! when the quorum is not in after `read_hedge_ms`. The shell
//! (`files/quorum.rs`) sends the calls, waits, and feeds back
//! answers and wake-ups with the time read from the node's clock.

use std::time::Duration;

use hypha_cluster::membership::MemberKey;
use tokio::time::Instant;

/// How a call asks its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A write: every target at once; once the quorum is in, the rest get
    /// `straggler` more (their calls then finish in the background).
    AllAtOnce {
        /// Grace for the replicas beyond the quorum.
        straggler: Duration,
    },
    /// A read: the first `need` targets; the next for each answer that
    /// fails or does not count; all the rest after `hedge`.
    Hedged {
        /// How long the quorum may take before every replica is asked.
        hedge: Duration,
    },
}

/// One replica's answer, as the quorum counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A success that counts toward the quorum.
    Counts,
    /// A success that is data but no quorum member (a replica still
    /// catching up, or one that is not a replica in its own view).
    Uncounted,
    /// No answer: unreachable, timed out, or refused.
    Failed,
}

/// What the shell carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send the request to this replica.
    Call(MemberKey),
    /// Wake the call at this instant (the straggler deadline or the hedge).
    WakeAt(Instant),
    /// The call is over; calls still running are the shell's to keep
    /// (a write's background tail) or drop (a read).
    Finish,
}

/// Where a target stands in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    NotAsked,
    Asked,
    Answered(Answer),
}

/// A quorum call in progress.
#[derive(Debug, Clone)]
pub struct QuorumCall {
    targets: Vec<MemberKey>,
    status: Vec<Status>,
    need: usize,
    pace: Pace,
    wake_at: Option<Instant>,
    hedged: bool,
    finished: bool,
}

impl QuorumCall {
    /// Start a call for `need` counting answers from `targets` (in order
    /// of preference); the effects are the first calls (and wake-up).
    pub fn start(
        targets: Vec<MemberKey>,
        need: usize,
        pace: Pace,
        now: Instant,
    ) -> (Self, Vec<Effect>) {
        let status = vec![Status::NotAsked; targets.len()];
        let mut call = Self {
            targets,
            status,
            need,
            pace,
            wake_at: None,
            hedged: false,
            finished: false,
        };
        let mut effects = match pace {
            Pace::AllAtOnce { .. } => call.ask_rest(),
            Pace::Hedged { hedge } if need > 0 => {
                let mut effects = call.ask_next(need);
                call.wake_at = Some(now + hedge);
                effects.extend(call.wake_at.map(Effect::WakeAt));
                effects
            }
            Pace::Hedged { .. } => Vec::new(),
        };
        effects.extend(call.finish_if_over());
        (call, effects)
    }

    /// `member` answered. An answer from a replica not asked, or asked and
    /// already answered, changes nothing: no answer is counted twice.
    pub fn on_answer(&mut self, member: &MemberKey, answer: Answer, now: Instant) -> Vec<Effect> {
        let Some(i) = self.index_of(member) else {
            return Vec::new();
        };
        if self.finished || self.status[i] != Status::Asked {
            return Vec::new();
        }
        self.status[i] = Status::Answered(answer);
        let mut effects = Vec::new();
        match self.pace {
            Pace::AllAtOnce { straggler } => {
                if self.wake_at.is_none() && self.successes() >= self.need {
                    self.wake_at = Some(now + straggler);
                    effects.extend(self.wake_at.map(Effect::WakeAt));
                }
            }
            Pace::Hedged { .. } if answer != Answer::Counts => effects.extend(self.ask_next(1)),
            Pace::Hedged { .. } => {}
        }
        effects.extend(self.finish_if_over());
        effects
    }

    /// The wake-up asked for came: a write's stragglers had their grace;
    /// a read's quorum is late, so every replica not yet asked is.
    pub fn on_wake(&mut self) -> Vec<Effect> {
        if self.finished || self.wake_at.is_none() {
            return Vec::new();
        }
        self.wake_at = None;
        match self.pace {
            Pace::AllAtOnce { .. } => {
                self.finished = true;
                vec![Effect::Finish]
            }
            Pace::Hedged { .. } => {
                self.hedged = true;
                let mut effects = self.ask_rest();
                effects.extend(self.finish_if_over());
                effects
            }
        }
    }

    /// The pending wake-up, if any.
    pub fn wake_at(&self) -> Option<Instant> {
        self.wake_at
    }

    /// Whether the call is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Answers that count toward the quorum.
    pub fn counted(&self) -> usize {
        self.count(|s| s == Status::Answered(Answer::Counts))
    }

    /// Calls sent and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.count(|s| s == Status::Asked)
    }

    /// Replicas asked so far (answered or not).
    #[cfg(test)]
    pub fn asked(&self) -> usize {
        self.count(|s| s != Status::NotAsked)
    }

    /// Whether the hedge fired.
    #[cfg(test)]
    pub fn hedged(&self) -> bool {
        self.hedged
    }

    /// Check the call's invariants; `Err` names the first one broken.
    #[cfg(test)]
    pub fn check(&self) -> Result<(), String> {
        if self.status.len() != self.targets.len() {
            return Err("a status per target".into());
        }
        let asked = self.asked();
        if let Pace::Hedged { .. } = self.pace {
            let replaced =
                self.count(|s| matches!(s, Status::Answered(Answer::Uncounted | Answer::Failed)));
            if !self.hedged && asked > self.need + replaced {
                return Err(format!(
                    "{asked} asked before the hedge, beyond {} + {replaced} replaced",
                    self.need
                ));
            }
            if !self.finished && self.counted() >= self.need {
                return Err("a read at its quorum must be over".into());
            }
        }
        if !self.finished && self.outstanding() == 0 && self.wake_at.is_none() {
            return Err("a call waiting for nothing".into());
        }
        Ok(())
    }

    fn index_of(&self, member: &MemberKey) -> Option<usize> {
        self.targets.iter().position(|m| m == member)
    }

    fn count(&self, pred: impl Fn(Status) -> bool) -> usize {
        self.status.iter().filter(|s| pred(**s)).count()
    }

    /// A write counts every success toward its `need`.
    fn successes(&self) -> usize {
        self.count(|s| matches!(s, Status::Answered(Answer::Counts | Answer::Uncounted)))
    }

    /// Ask the next `n` targets not asked yet, in order.
    fn ask_next(&mut self, n: usize) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (i, status) in self.status.iter_mut().enumerate() {
            if effects.len() == n {
                break;
            }
            if *status == Status::NotAsked {
                *status = Status::Asked;
                effects.push(Effect::Call(self.targets[i].clone()));
            }
        }
        effects
    }

    fn ask_rest(&mut self) -> Vec<Effect> {
        self.ask_next(self.targets.len())
    }

    /// Over when a read has its quorum, or nothing more can come: every
    /// call answered and none left to ask now.
    fn finish_if_over(&mut self) -> Option<Effect> {
        if self.finished {
            return None;
        }
        let read_done = matches!(self.pace, Pace::Hedged { .. }) && self.counted() >= self.need;
        if read_done || self.outstanding() == 0 {
            self.finished = true;
            self.wake_at = None;
            return Some(Effect::Finish);
        }
        None
    }
}
