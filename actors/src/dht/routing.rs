//! Interim routing table (replaced by the k-bucket implementation).
#![allow(missing_docs)]
use super::keyspace::Key;

pub const K: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    Updated,
    BucketFull,
    IsOwner,
}

#[derive(Debug, Clone)]
pub struct RoutingTable<T> {
    owner: Key,
    entries: Vec<(Key, T)>,
}

impl<T: Clone> RoutingTable<T> {
    pub fn new(owner: Key, _k: usize) -> Self {
        Self {
            owner,
            entries: Vec::new(),
        }
    }
    pub fn insert(&mut self, key: Key, contact: T) -> InsertOutcome {
        if key == self.owner {
            return InsertOutcome::IsOwner;
        }
        if let Some(e) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            e.1 = contact;
            return InsertOutcome::Updated;
        }
        self.entries.push((key, contact));
        InsertOutcome::Inserted
    }
    pub fn remove(&mut self, key: &Key) -> Option<T> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn closest(&self, target: &Key, n: usize) -> Vec<(Key, T)> {
        let mut v = self.entries.clone();
        v.sort_by(|a, b| target.cmp_distance(&a.0, &b.0));
        v.truncate(n);
        v
    }
}
