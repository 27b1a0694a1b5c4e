//! Child templates for dynamic supervisors: many children of one spec
//! (OTP `simple_one_for_one`), each with its own arguments and a unique id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::spec::{ChildId, ChildSpec};

type BuildFn<A> = Arc<dyn Fn(ChildId, A) -> ChildSpec + Send + Sync>;

/// Builds child specs named `<name>-<n>` from arguments of type `A`.
pub struct ChildTemplate<A> {
    name: String,
    build: BuildFn<A>,
    next: Arc<AtomicU64>,
}

impl<A> Clone for ChildTemplate<A> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            build: self.build.clone(),
            next: self.next.clone(),
        }
    }
}

impl<A> ChildTemplate<A> {
    /// A template called `name`; `build(id, args)` makes each child's spec.
    pub fn new<F>(name: impl Into<String>, build: F) -> Self
    where
        F: Fn(ChildId, A) -> ChildSpec + Send + Sync + 'static,
    {
        Self {
            name: name.into(),
            build: Arc::new(build),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// A spec for one more child with `args`; its metric label is the
    /// template name so that label values stay bounded.
    pub fn instantiate(&self, args: A) -> ChildSpec {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", self.name);
        (self.build)(id, args).metric_label(self.name.clone())
    }
}
