//! `.dockerignore` as the docker CLI reads it (moby's `patternmatcher`): one pattern a
//! line, `#` comments, patterns anchored at the context root and cleaned (`/foo`, `./foo`
//! and `foo/` all mean `foo`), `*` and `?` stopping at `/`, `**` crossing folders, a
//! pattern excluding a folder excluding what is under it, and `!` exceptions where the
//! last matching line decides. The glob itself is `globset`'s, set to Go's rules.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// One line of a `.dockerignore`.
#[derive(Clone, Debug)]
struct Pattern {
    matcher: GlobMatcher,
    exception: bool,
}

/// The patterns of one `.dockerignore`.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// A line of a `.dockerignore` that is no pattern Docker accepts.
#[derive(Debug, thiserror::Error)]
#[error(".dockerignore line {line}: {message}")]
pub struct IgnoreError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl DockerIgnore {
    /// Reads the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let mut line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let exception = line.starts_with('!');
            if exception {
                line = line[1..].trim();
                if line.is_empty() {
                    return Err(IgnoreError {
                        line: i + 1,
                        message: "a `!` with no pattern".into(),
                    });
                }
            }
            let cleaned = clean(line);
            let glob: Glob = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| IgnoreError {
                    line: i + 1,
                    message: e.to_string(),
                })?;
            patterns.push(Pattern {
                matcher: glob.compile_matcher(),
                exception,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether some pattern is an exception (`!`): an excluded folder must then still be
    /// walked, since a file under it may be taken back.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out: the last
    /// pattern matching it or one of its parent folders decides.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // An exclusion matters only while the path is kept, an exception only while
            // it is left out (moby's MatchesOrParentMatches).
            if p.exception != excluded {
                continue;
            }
            let hit = p.matcher.is_match(path) || parents.iter().any(|d| p.matcher.is_match(d));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

/// A pattern as Go's `filepath.Clean` leaves it, without a leading `/`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn patterns_are_anchored_at_the_root_and_cleaned() {
        let d = ignore("# comment\n/secret.txt\n./build/\nlogs\n");
        assert!(d.excludes("secret.txt"));
        assert!(!d.excludes("sub/secret.txt"), "anchored, unlike .gitignore");
        assert!(
            d.excludes("build/out/a.o"),
            "a folder takes what is under it"
        );
        assert!(d.excludes("logs"));
        assert!(!d.excludes("src/main.rs"));
    }

    #[test]
    fn stars_stop_at_slashes_and_double_stars_cross_folders() {
        let d = ignore("*.tmp\n**/*.bak\ndocs/*/draft.md\n");
        assert!(d.excludes("a.tmp"));
        assert!(!d.excludes("sub/a.tmp"), "* stops at /");
        assert!(d.excludes("x.bak") && d.excludes("a/b/c/x.bak"));
        assert!(d.excludes("docs/v1/draft.md"));
        assert!(!d.excludes("docs/v1/v2/draft.md"));
    }

    #[test]
    fn the_last_matching_line_decides_and_exceptions_take_files_back() {
        let d = ignore("*.md\n!README.md\nREADME*.md\n!keep/**\ncache\n!cache/keep.txt\n");
        assert!(d.excludes("CHANGES.md"));
        assert!(
            d.excludes("README.md"),
            "the later README*.md excludes it again"
        );
        assert!(d.excludes("cache/other"));
        assert!(!d.excludes("cache/keep.txt"));
        assert!(d.has_exceptions());
        assert!(DockerIgnore::parse("!\n").is_err());
    }
}
