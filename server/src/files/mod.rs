//! File sessions: the confined filesystem layer behind `openwork files …` (reference §A11).
//!
//! [`path`] turns client strings into plain relative names, [`beneath`] resolves them under a
//! root handle without following links, [`locks`] serialises check-then-change per path,
//! [`catalog`] lists the tree, [`events`] records server-made changes and [`sessions`] holds
//! the sessions. The HTTP handlers live in `routes::files` and `routes::files_write`.

pub mod beneath;
pub mod catalog;
pub mod events;
pub mod locks;
pub mod path;
pub mod sessions;

/// Largest file read or written, in bytes (decoded).
pub const MAX_FILE_BYTES: u64 = 5_000_000;
/// Most entries in one read-batch, write-batch or ops request.
pub const MAX_BATCH: usize = 64;
/// Most file bytes one read-batch returns; later files answer `response_too_large`.
pub const READ_BATCH_BUDGET: u64 = 64 * 1024 * 1024;
