//! The catalog listing of a workspace (reference §A11.5).
//!
//! Threats: a walk that follows a symlink out of the root (it never does: it descends through
//! directory handles opened with `O_NOFOLLOW`, and lists only regular files and directories),
//! and a denial of service by a huge tree (the walk is capped at [`MAX_ENTRIES`] and reports
//! `incomplete`; `.git` and `node_modules` are skipped unless asked for). The original rescanned
//! and re-sorted the whole tree on every page (a performance weakness); callers keep a
//! [`Listing`] per session and page through it.
//!
//! Order: plain byte order of the normalised path, used both to sort and to compare `after`,
//! so pages never skip or repeat an entry (weakness W6).

use std::os::fd::OwnedFd;

use serde_json::{Value, json};

use super::beneath::{FsError, Meta, Root, entry_meta, list_names, open_child_dir};

/// Most entries one walk collects.
pub const MAX_ENTRIES: usize = 200_000;
/// Directories skipped unless `excludeHeavyDirectories=false`.
pub const HEAVY_DIRS: [&str; 2] = [".git", "node_modules"];

/// One catalog entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Normalised relative path.
    pub path: String,
    /// Its metadata.
    pub meta: Meta,
}

impl Entry {
    /// `{"path","kind","size","mtimeMs","revision"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path,
            "kind": if self.meta.is_dir { "dir" } else { "file" },
            "size": if self.meta.is_dir { 0 } else { self.meta.size },
            "mtimeMs": self.meta.mtime_ms,
            "revision": self.meta.revision(),
        })
    }
}

/// A sorted snapshot of the tree.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Entries in byte order of `path`.
    pub entries: Vec<Entry>,
    /// Directories that could not be read (relative paths).
    pub skipped: Vec<String>,
    /// True when directories were skipped or the entry cap was hit.
    pub incomplete: bool,
}

/// Walks the tree under `root` (or under `prefix` only, when given).
pub fn walk(root: &Root, prefix: Option<&str>, exclude_heavy: bool) -> Result<Listing, FsError> {
    let mut listing = Listing::default();
    let start: OwnedFd = match prefix {
        None => root.open_dir(&[], false)?,
        Some(p) => {
            let segments: Vec<&str> = p.split('/').collect();
            let (parent, name) = segments.split_at(segments.len().saturating_sub(1));
            let parent_fd = match root.open_dir(parent, false) {
                Ok(fd) => fd,
                Err(FsError::NotFound | FsError::NotADirectory | FsError::Symlink) => {
                    return Ok(listing);
                }
                Err(e) => return Err(e),
            };
            let Some(name) = name.first() else {
                return Ok(listing);
            };
            match entry_meta(&parent_fd, name)? {
                None => return Ok(listing),
                Some(meta) if !meta.is_dir => {
                    listing.entries.push(Entry {
                        path: p.to_owned(),
                        meta,
                    });
                    return Ok(listing);
                }
                Some(meta) => {
                    listing.entries.push(Entry {
                        path: p.to_owned(),
                        meta,
                    });
                    open_child_dir(&parent_fd, name)?
                }
            }
        }
    };
    let mut stack: Vec<(OwnedFd, String)> = vec![(start, prefix.unwrap_or("").to_owned())];
    while let Some((dir, rel)) = stack.pop() {
        let names = match list_names(&dir) {
            Ok(names) => names,
            Err(_) => {
                listing.skipped.push(rel);
                listing.incomplete = true;
                continue;
            }
        };
        for name in names {
            if listing.entries.len() >= MAX_ENTRIES {
                listing.incomplete = true;
                break;
            }
            if exclude_heavy && HEAVY_DIRS.contains(&name.as_str()) {
                continue;
            }
            let Ok(Some(meta)) = entry_meta(&dir, &name) else {
                continue;
            };
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if meta.is_dir {
                match open_child_dir(&dir, &name) {
                    Ok(child) => stack.push((child, path.clone())),
                    Err(_) => {
                        listing.skipped.push(path.clone());
                        listing.incomplete = true;
                    }
                }
            }
            listing.entries.push(Entry { path, meta });
        }
    }
    listing
        .entries
        .sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    listing.skipped.sort();
    Ok(listing)
}

/// One page of a listing.
#[derive(Debug)]
pub struct Page<'a> {
    /// The entries of the page.
    pub items: Vec<&'a Entry>,
    /// Entries left after all filters (before the limit).
    pub total: usize,
    /// Whether more entries follow.
    pub truncated: bool,
}

/// Applies `includeDirs`, `prefix` and `after` (byte order), then `limit`.
pub fn page<'a>(
    listing: &'a Listing,
    prefix: Option<&str>,
    after: Option<&str>,
    include_dirs: bool,
    limit: usize,
) -> Page<'a> {
    let start = after.map_or(0, |a| {
        listing
            .entries
            .partition_point(|e| e.path.as_bytes() <= a.as_bytes())
    });
    let filtered = listing.entries[start..].iter().filter(|e| {
        (include_dirs || !e.meta.is_dir)
            && prefix.is_none_or(|p| {
                e.path == p
                    || (e.path.len() > p.len()
                        && e.path.starts_with(p)
                        && e.path.as_bytes().get(p.len()) == Some(&b'/'))
            })
    });
    let all: Vec<&Entry> = filtered.collect();
    let total = all.len();
    let items: Vec<&Entry> = all.into_iter().take(limit).collect();
    Page {
        truncated: total > items.len(),
        items,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8Path;

    #[test]
    fn walk_sorts_bytewise_skips_links_and_heavy_dirs() {
        let ws = tempfile::tempdir().unwrap();
        let p = ws.path();
        for d in ["a", "a/b", ".git", "node_modules/x", "Z"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        for f in [
            "a.txt",
            "a/b/c.txt",
            ".git/HEAD",
            "node_modules/x/i.js",
            "é.md",
            "Z/z",
        ] {
            std::fs::write(p.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink("/etc", p.join("link")).unwrap();
        let root = Root::open(Utf8Path::from_path(p).unwrap()).unwrap();
        let listing = walk(&root, None, true).unwrap();
        let paths: Vec<&str> = listing.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["Z", "Z/z", "a", "a.txt", "a/b", "a/b/c.txt", "é.md"]
        );
        let all = walk(&root, None, false).unwrap();
        assert!(all.entries.iter().any(|e| e.path == ".git/HEAD"));
        assert!(all.entries.iter().any(|e| e.path == "node_modules/x/i.js"));

        let pg = page(&listing, None, Some("a.txt"), false, 1);
        assert_eq!(pg.items[0].path, "a/b/c.txt");
        assert_eq!((pg.total, pg.truncated), (2, true));
        let pg = page(&listing, Some("a"), None, true, 10);
        let paths: Vec<&str> = pg.items.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c.txt"]);
        let sub = walk(&root, Some("a/b"), true).unwrap();
        assert_eq!(sub.entries.len(), 2);
        assert!(walk(&root, Some("link"), true).unwrap().entries.is_empty());
    }
}
