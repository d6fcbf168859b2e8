//! Reading manifest files, folders and stdin into objects, checking each document.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::limits::describe_bytes;
use super::validate::{Diagnostic, Input, Options, validate_sources};
use super::yaml::Limits;
use crate::api::DynamicObject;

/// Most bytes read from one input file (or stdin): the YAML reader's size limit.
pub const MAX_FILE_BYTES: usize = Limits::DEFAULT.max_bytes;

/// Why an input was refused for its size (it was read no further than the limit).
pub fn too_large_message(limit: usize) -> String {
    format!(
        "the file is larger than {}: the limit is {limit} bytes",
        describe_bytes_short(limit)
    )
}

/// `8 MiB` for a bound, without the exact figure [`describe_bytes`] adds.
fn describe_bytes_short(limit: usize) -> String {
    let full = describe_bytes(limit);
    match full.split_once(" (") {
        Some((short, _)) => short.to_string(),
        None => full,
    }
}

/// Reads at most `max + 1` bytes of `reader` into `buffer` (cleared first): a file, a
/// device such as `/dev/zero`, a pipe or stdin costs no more memory than the limit.
/// Returns whether it all fit, i.e. `false` when there was more than `max`.
pub fn read_bounded(reader: impl Read, max: usize, buffer: &mut Vec<u8>) -> std::io::Result<bool> {
    buffer.clear();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    buffer.reserve(max.min(64 * 1024));
    reader.take(cap).read_to_end(buffer)?;
    Ok(buffer.len() <= max)
}

/// Reads a whole file of at most `max` bytes; a larger one (or an endless device) is an
/// error saying so, after reading no more than `max + 1` bytes.
pub fn read_file_bounded(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    if read_bounded(file, max, &mut bytes)? {
        Ok(bytes)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            too_large_message(max),
        ))
    }
}

/// [`read_file_bounded`] for text: bytes that are not UTF-8 are an error.
pub fn read_text_bounded(path: &Path, max: usize) -> std::io::Result<String> {
    String::from_utf8(read_file_bounded(path, max)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        )
    })
}

/// One input: a file's path (or `-`) and its bytes.
#[derive(Clone, Debug)]
pub struct Source {
    /// Where it came from, as the user named it.
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// A problem with one document of one source, at its `file:line:column`.
pub type ManifestError = Diagnostic;

/// Reading inputs failed (not the content: the files themselves).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ReadError {
    /// The path.
    pub path: String,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Reads files, folders (`*.yaml`, `*.yml`, `*.json`; recursing with `recursive`) and `-`
/// (stdin), in the order of [`expand_paths`]; the first input that cannot be read is the error.
pub fn read_sources(paths: &[PathBuf], recursive: bool) -> Result<Vec<Source>, ReadError> {
    expand_paths(paths, recursive)
        .into_iter()
        .map(|input| match input {
            Input::File(path) => match read_file_bounded(&path, MAX_FILE_BYTES) {
                Ok(bytes) => Ok(Source {
                    name: path.display().to_string(),
                    bytes,
                }),
                Err(source) => Err(ReadError {
                    path: path.display().to_string(),
                    source,
                }),
            },
            Input::Source(source) => Ok(source),
            Input::Unreadable { name, error } => Err(ReadError {
                path: name,
                source: std::io::Error::other(error),
            }),
        })
        .collect()
}

/// Checks every document of every source (YAML with positions, the kind's schema in the
/// stored mode, the cross-object checks of [`crate::manifest::validate`]) and returns the
/// objects, or every problem of every source with its `file:line:column`. This is the
/// validation `kargo validate` does, so `kargo apply` writes nothing unless all of it passes.
pub fn parse_objects(sources: &[Source]) -> Result<Vec<DynamicObject>, Vec<ManifestError>> {
    let report = validate_sources(sources, &Options::default());
    if report.is_valid() {
        Ok(report.objects)
    } else {
        Err(report.diagnostics().cloned().collect())
    }
}

/// Lists the inputs named on a command line for [`crate::manifest::validate::validate_inputs`]:
/// files as given (any extension), folders' `*.yaml`, `*.yml` and `*.json` files sorted by
/// path (recursing with `recursive`), and `-` read from stdin at once. Paths that cannot be
/// read or listed become [`Input::Unreadable`], so the run reports them and goes on.
pub fn expand_paths(paths: &[PathBuf], recursive: bool) -> Vec<Input> {
    let mut listed = Vec::new();
    list_inputs(paths, recursive, &mut |item| listed.push(item));
    sort_listed(&mut listed);
    listed.into_iter().map(|item| item.input).collect()
}

/// An input as [`list_inputs`] finds it: which command-line path it came from, and itself.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The place of its path on the command line.
    pub arg: usize,
    /// The input.
    pub input: Input,
}

/// Calls `found` with each input named by `paths`, as soon as it is found: folders in the
/// order the file system lists them (so a caller can start on the first files before a
/// large folder is fully listed); [`sort_listed`] puts them in the order of [`expand_paths`].
pub fn list_inputs(paths: &[PathBuf], recursive: bool, found: &mut dyn FnMut(Listed)) {
    for (arg, p) in paths.iter().enumerate() {
        let mut add = |input: Input| found(Listed { arg, input });
        if p.as_os_str() == "-" {
            let mut bytes = Vec::new();
            match read_bounded(std::io::stdin().lock(), MAX_FILE_BYTES, &mut bytes) {
                Ok(true) => add(Input::Source(Source {
                    name: "-".into(),
                    bytes,
                })),
                Ok(false) => add(Input::Unreadable {
                    name: "-".into(),
                    error: too_large_message(MAX_FILE_BYTES).replacen("file", "input", 1),
                }),
                Err(e) => add(Input::Unreadable {
                    name: "-".into(),
                    error: e.to_string(),
                }),
            }
        } else if p.is_dir() {
            list_dir(p, recursive, &mut add, &mut HashSet::new());
        } else if p.exists() {
            add(Input::File(p.clone()));
        } else {
            add(Input::Unreadable {
                name: p.display().to_string(),
                error: "no such file or directory".into(),
            });
        }
    }
}

/// Sorts what [`list_inputs`] found into command-line order, and each folder's files by
/// path: component by component, so `a/x.yaml` (in folder `a`) comes before `a.yaml`, as a
/// walk that visits each folder's sorted entries in turn would give them.
pub fn sort_listed(listed: &mut [Listed]) {
    listed.sort_by_cached_key(Listed::order_key);
}

impl Listed {
    /// Where it sorts: its command-line place, then its path with each `/` made a NUL byte
    /// (which no path holds), so plain byte order is component-by-component order.
    pub fn order_key(&self) -> (usize, Vec<u8>) {
        let key = self
            .input
            .path_bytes()
            .iter()
            .map(|&b| if b == b'/' { 0 } else { b })
            .collect();
        (self.arg, key)
    }
}

/// Passes the manifest files of `dir` to `found`, recursing with `recursive`.
///
/// Symlinks to folders are followed, but each folder is listed once per command-line
/// path, known by its device and inode (`visited`): a symlink loop, or two links to one
/// folder, cannot make the walk endless or list files twice.
fn list_dir(
    dir: &Path,
    recursive: bool,
    found: &mut dyn FnMut(Input),
    visited: &mut HashSet<(u64, u64)>,
) {
    match std::fs::metadata(dir) {
        Ok(meta) => {
            use std::os::unix::fs::MetadataExt;
            if !visited.insert((meta.dev(), meta.ino())) {
                return;
            }
        }
        Err(e) => {
            found(Input::Unreadable {
                name: dir.display().to_string(),
                error: e.to_string(),
            });
            return;
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found(Input::Unreadable {
                name: dir.display().to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    // The entry's type comes from the directory listing itself (no stat per file, which
    // matters for folders of thousands of manifests); a symlink is followed to see what it names.
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_dir(),
            _ => path.is_dir(),
        };
        if is_dir {
            if recursive {
                list_dir(&path, recursive, found, visited);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            found(Input::File(path));
        }
    }
}

/// Drops explicit nulls from maps, for typing a spec that may be an overlay.
pub fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_listed_in_path_order_with_sub_folders_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for name in [
            "b.yaml",
            "a.yaml",
            "a/x.yaml",
            "a/c/z.yml",
            "a-b.yaml",
            "a.json",
            "notes.txt",
        ] {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "a: 1\n").expect("write");
        }
        let names = |recursive| -> Vec<String> {
            expand_paths(&[root.to_path_buf()], recursive)
                .iter()
                .map(|i| {
                    i.name()
                        .trim_start_matches(&root.display().to_string())
                        .to_string()
                })
                .collect()
        };
        assert_eq!(
            names(true),
            [
                "/a/c/z.yml",
                "/a/x.yaml",
                "/a-b.yaml",
                "/a.json",
                "/a.yaml",
                "/b.yaml"
            ]
        );
        assert_eq!(names(false), ["/a-b.yaml", "/a.json", "/a.yaml", "/b.yaml"]);
    }

    #[test]
    fn a_symlink_loop_is_walked_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("a/b/x.yaml"), "a: 1\n").expect("write");
        std::os::unix::fs::symlink("..", root.join("a/b/up")).expect("symlink");
        std::os::unix::fs::symlink(root, root.join("a/root")).expect("symlink");
        let inputs = expand_paths(&[root.to_path_buf()], true);
        let names: Vec<String> = inputs.iter().map(Input::name).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with("x.yaml"), "{names:?}");
    }

    #[test]
    fn an_endless_file_is_read_only_up_to_the_limit() {
        let error = read_file_bounded(Path::new("/dev/zero"), 1024).err();
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some("the file is larger than 1 KB: the limit is 1024 bytes")
        );
        let mut buffer = Vec::new();
        let all = read_bounded(&b"12345"[..], 5, &mut buffer).ok();
        assert_eq!((all, buffer.len()), (Some(true), 5));
        let all = read_bounded(&b"123456"[..], 5, &mut buffer).ok();
        assert_eq!((all, buffer.len()), (Some(false), 6));
    }
}
