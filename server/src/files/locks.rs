//! Per-path write locks.
//!
//! Threat: lost updates. Two writers that both pass the `ifMatchRevision` check and then both
//! rename over the file would silently drop one update. Every check-then-change of a path
//! (write, delete, rename) runs while holding that path's lock, so exactly one of two racing
//! writers with the same revision wins and the other sees a conflict. Locks are striped by a
//! hash of (workspace, path); an operation on two paths (rename) takes both stripes in index
//! order, so two renames cannot deadlock.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

/// Number of stripes; collisions only serialise unrelated paths, never break correctness.
const STRIPES: usize = 256;

/// The lock table.
#[derive(Debug)]
pub struct PathLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for PathLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

/// Held locks; released on drop.
pub struct Held<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl PathLocks {
    fn index(workspace: &str, path: &str) -> usize {
        let mut h = DefaultHasher::new();
        (workspace, path).hash(&mut h);
        usize::try_from(h.finish() % STRIPES as u64).unwrap_or(0)
    }

    /// Locks every path in `paths` of `workspace` (blocking).
    pub fn lock(&self, workspace: &str, paths: &[&str]) -> Held<'_> {
        let mut indexes: Vec<usize> = paths.iter().map(|p| Self::index(workspace, p)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let guards = indexes
            .into_iter()
            .filter_map(|i| self.stripes.get(i))
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        Held { _guards: guards }
    }
}
