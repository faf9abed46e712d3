//! The `--sandbox-mount` grammar: lists of `hostPath:subpath[:ro|rw]` specs.
//!
//! Threat: a container subpath that escapes `/workspace/extra` (`..`, an absolute path), that
//! injects engine mount options (the reference let `:` and `,` through, so
//! `x:data,readonly=false` could reach a `--mount` string), or that shadows another mount
//! (`data` and `data/x`, or `a` twice). Subpath segments are restricted to `[A-Za-z0-9._-]`,
//! normalized (`a//b/` is `a/b`), and duplicate or nested targets are refused.
//!
//! Left open: nothing here touches the host path beyond splitting it off; it is resolved and
//! checked by [`crate::validate`]. A host path cannot contain `:` (the first `:` ends it), and a
//! `,`/`;`-separated list cannot hold `,` or `;` (use the JSON-array form).

use std::fmt;

use crate::error::{Error, SubpathProblem};

/// The prefix of every extra mount inside the container.
pub const CONTAINER_BASE: &str = "/workspace/extra";

/// What access the spec asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedAccess {
    /// No suffix: read-write if the root allows it, else read-only.
    Default,
    /// `:ro`.
    ReadOnly,
    /// `:rw`: an error under a read-only root.
    ReadWrite,
}

/// A normalized container subpath: non-empty segments of `[A-Za-z0-9._-]`, none `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subpath {
    /// The segments, in order.
    segments: Vec<String>,
}

impl Subpath {
    /// The segments, in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether `self` is a proper ancestor of `other` (`data` of `data/x`).
    pub fn contains(&self, other: &Subpath) -> bool {
        other.segments.len() > self.segments.len() && other.segments.starts_with(&self.segments)
    }

    /// `/workspace/extra/<subpath>`.
    pub fn container_path(&self) -> String {
        format!("{CONTAINER_BASE}/{self}")
    }
}

impl fmt::Display for Subpath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

/// One parsed `hostPath:subpath[:ro|rw]` spec. The host path is not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The entry as given (trimmed), for messages.
    spec: String,
    /// The host path as written (trimmed); `~` is expanded during validation.
    host: String,
    /// The normalized container subpath.
    subpath: Subpath,
    /// The access asked for.
    access: RequestedAccess,
}

impl MountSpec {
    /// Parses one entry (one item of a list).
    pub fn parse(entry: &str) -> Result<Self, Error> {
        let spec = entry.trim();
        let (rest, access) = if let Some(rest) = spec.strip_suffix(":ro") {
            (rest, RequestedAccess::ReadOnly)
        } else if let Some(rest) = spec.strip_suffix(":rw") {
            (rest, RequestedAccess::ReadWrite)
        } else {
            (spec, RequestedAccess::Default)
        };
        let invalid = || Error::InvalidSpec {
            spec: spec.to_owned(),
        };
        let colon = rest.find(':').ok_or_else(invalid)?;
        if colon == 0 || colon + 1 == rest.len() {
            return Err(invalid());
        }
        let host = rest[..colon].trim();
        let sub = rest[colon + 1..].trim();
        if host.is_empty() {
            return Err(Error::EmptyHostPath {
                spec: spec.to_owned(),
            });
        }
        if sub.is_empty() {
            return Err(Error::EmptySubpath {
                spec: spec.to_owned(),
            });
        }
        let subpath = parse_subpath(sub).map_err(|problem| Error::InvalidSubpath {
            spec: spec.to_owned(),
            subpath: sub.to_owned(),
            problem,
        })?;
        Ok(Self {
            spec: spec.to_owned(),
            host: host.to_owned(),
            subpath,
            access,
        })
    }

    /// The entry as given (trimmed).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The host path as written.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The normalized container subpath.
    pub fn subpath(&self) -> &Subpath {
        &self.subpath
    }

    /// The access asked for.
    pub fn access(&self) -> RequestedAccess {
        self.access
    }
}

/// Parses every `--sandbox-mount` value (the flag is repeatable; `OPENWORK_SANDBOX_MOUNT` gives
/// one value). Each value is a JSON array of strings when it starts with `[`, else a list
/// separated by `,` or `;` whose items are trimmed and empty ones dropped. Refuses duplicate or
/// nested container subpaths across all values.
pub fn parse_specs(raw: &[String]) -> Result<Vec<MountSpec>, Error> {
    let mut specs = Vec::new();
    for value in raw {
        for entry in split_list(value)? {
            specs.push(MountSpec::parse(&entry)?);
        }
    }
    check_targets(&specs)?;
    Ok(specs)
}

/// Splits one flag value into entries.
fn split_list(raw: &str) -> Result<Vec<String>, Error> {
    let trimmed = raw.trim();
    if !trimmed.starts_with('[') {
        return Ok(trimmed
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let value: serde_json::Value =
        serde_json::from_str(trimmed).map_err(|e| Error::SpecListJson {
            raw: raw.to_owned(),
            line: e.line(),
            column: e.column(),
            message: crate::file::json_message(&e),
        })?;
    let serde_json::Value::Array(items) = value else {
        // Starts with `[` and parsed, so it is an array; anything else is a bug upstream.
        return Err(Error::SpecListItem {
            raw: raw.to_owned(),
            index: 0,
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            serde_json::Value::String(s) if s.trim().is_empty() => Err(Error::EmptySpec {
                raw: raw.to_owned(),
            }),
            serde_json::Value::String(s) => Ok(s),
            _ => Err(Error::SpecListItem {
                raw: raw.to_owned(),
                index,
            }),
        })
        .collect()
}

/// Checks and normalizes a (trimmed, non-empty) container subpath.
fn parse_subpath(sub: &str) -> Result<Subpath, SubpathProblem> {
    if sub.contains('\0') {
        return Err(SubpathProblem::Nul);
    }
    if sub.contains('\\') {
        return Err(SubpathProblem::Backslash);
    }
    if sub.starts_with('/') {
        return Err(SubpathProblem::Absolute);
    }
    if sub.contains("..") {
        return Err(SubpathProblem::DotDot);
    }
    let segments: Vec<String> = sub
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if segments.is_empty() {
        return Err(SubpathProblem::NoSegment);
    }
    for segment in &segments {
        if segment == "." {
            return Err(SubpathProblem::DotSegment);
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(SubpathProblem::BadChar(c));
        }
        if segment.len() > 255 {
            return Err(SubpathProblem::SegmentTooLong(segment.len()));
        }
    }
    Ok(Subpath { segments })
}

/// Refuses two specs with the same container subpath, or one inside the other.
pub(crate) fn check_targets(specs: &[MountSpec]) -> Result<(), Error> {
    for (i, a) in specs.iter().enumerate() {
        for b in &specs[i + 1..] {
            if a.subpath == b.subpath {
                return Err(Error::DuplicateSubpath {
                    subpath: a.subpath.to_string(),
                    first: a.spec.clone(),
                    second: b.spec.clone(),
                });
            }
            let (outer, inner) = if a.subpath.contains(&b.subpath) {
                (a, b)
            } else if b.subpath.contains(&a.subpath) {
                (b, a)
            } else {
                continue;
            };
            return Err(Error::NestedSubpath {
                outer: outer.subpath.to_string(),
                outer_spec: outer.spec.clone(),
                inner: inner.subpath.to_string(),
                inner_spec: inner.spec.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(entry: &str) -> Result<MountSpec, Error> {
        MountSpec::parse(entry)
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn good_specs() {
        let s = one(" ~/data:data ").unwrap();
        assert_eq!(
            (s.host(), s.subpath().to_string(), s.access()),
            ("~/data", "data".to_owned(), RequestedAccess::Default)
        );
        let s = one("/srv/x:a/b:ro").unwrap();
        assert_eq!(
            (s.host(), s.subpath().to_string(), s.access()),
            ("/srv/x", "a/b".to_owned(), RequestedAccess::ReadOnly)
        );
        let s = one("rel:a//b/:rw").unwrap();
        assert_eq!(
            (s.subpath().to_string(), s.access()),
            ("a/b".to_owned(), RequestedAccess::ReadWrite)
        );
        assert_eq!(s.subpath().container_path(), "/workspace/extra/a/b");
        let s = one("x: my-data_1.v2 :ro").unwrap();
        assert_eq!(s.subpath().to_string(), "my-data_1.v2");
    }

    #[test]
    fn bad_specs_have_the_reference_messages() {
        let e = one("nocolon").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Invalid --sandbox-mount value: nocolon. Use hostPath:subpath[:ro|rw]."
        );
        assert!(matches!(one(":x"), Err(Error::InvalidSpec { .. })));
        assert!(matches!(one("x:"), Err(Error::InvalidSpec { .. })));
        assert!(matches!(one("x:ro"), Err(Error::InvalidSpec { .. })));
        assert!(matches!(one(" :x"), Err(Error::InvalidSpec { .. })));
        let e = one("a :   :ro").unwrap_err();
        assert!(matches!(e, Error::EmptySubpath { .. }), "{e}");
        assert!(e.to_string().contains("Container subpath is empty"));
        let e = one("  \t:x").unwrap_err();
        assert!(matches!(e, Error::InvalidSpec { .. }), "{e}");
        // The entry is trimmed first, so a blank host path ends up as a leading ':'.
        assert_eq!(one("x\t :y").unwrap().host(), "x");
    }

    #[test]
    fn bad_subpaths() {
        let problem = |e: &str| match one(e) {
            Err(Error::InvalidSubpath { problem, .. }) => problem,
            other => panic!("{e}: {other:?}"),
        };
        assert_eq!(problem("x:/abs"), SubpathProblem::Absolute);
        assert_eq!(problem("x:a/../b"), SubpathProblem::DotDot);
        assert_eq!(problem("x:a..b"), SubpathProblem::DotDot);
        assert_eq!(problem("x:./a"), SubpathProblem::DotSegment);
        assert_eq!(problem("x:a\\b"), SubpathProblem::Backslash);
        assert_eq!(problem("x:a\0b"), SubpathProblem::Nul);
        assert_eq!(problem("x:a,readonly=false"), SubpathProblem::BadChar(','));
        assert_eq!(problem("x:a:b"), SubpathProblem::BadChar(':'));
        assert_eq!(problem("x:a b"), SubpathProblem::BadChar(' '));
        assert_eq!(problem("x:é"), SubpathProblem::BadChar('é'));
        assert_eq!(
            problem(&format!("x:{}", "a".repeat(256))),
            SubpathProblem::SegmentTooLong(256)
        );
        let e = one("x:a/../b").unwrap_err().to_string();
        assert!(
            e.starts_with("Invalid sandbox container subpath: \"a/../b\""),
            "{e}"
        );
        assert!(
            e.contains("Use a relative path without \"/\" prefix or \"..\""),
            "{e}"
        );
    }

    #[test]
    fn lists() {
        let specs = parse_specs(&strings(&["a:x, b:y ; ;c:z:ro", "d:w"])).unwrap();
        let subs: Vec<String> = specs.iter().map(|s| s.subpath().to_string()).collect();
        assert_eq!(subs, ["x", "y", "z", "w"]);
        let specs = parse_specs(&strings(&[r#" ["a:x", "b,c:y"] "#])).unwrap();
        assert_eq!(specs[1].host(), "b,c");
        assert!(parse_specs(&strings(&["", " , ;"])).unwrap().is_empty());
        assert!(parse_specs(&strings(&["[]"])).unwrap().is_empty());
    }

    #[test]
    fn bad_lists() {
        let e = parse_specs(&strings(&["[\"a:x\",\n 3]"])).unwrap_err();
        assert!(matches!(e, Error::SpecListItem { index: 1, .. }), "{e}");
        let e = parse_specs(&strings(&["[\"a:x\",\n oops]"])).unwrap_err();
        assert!(
            matches!(
                e,
                Error::SpecListJson {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("at line 2 column 2"), "{e}");
        let e = parse_specs(&strings(&["[\"a:x\", \" \"]"])).unwrap_err();
        assert!(matches!(e, Error::EmptySpec { .. }), "{e}");
    }

    #[test]
    fn duplicate_and_nested_targets() {
        let e = parse_specs(&strings(&["a:x", "b:x/"])).unwrap_err();
        assert!(
            matches!(&e, Error::DuplicateSubpath { subpath, first, second }
            if subpath == "x" && first == "a:x" && second == "b:x/"),
            "{e:?}"
        );
        let e = parse_specs(&strings(&["a:data/x", "b:data"])).unwrap_err();
        assert!(
            matches!(&e, Error::NestedSubpath { outer, inner, .. }
            if outer == "data" && inner == "data/x"),
            "{e:?}"
        );
        assert!(parse_specs(&strings(&["a:data", "b:data2", "c:dat"])).is_ok());
    }
}
