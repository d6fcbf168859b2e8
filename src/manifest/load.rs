//! Reading manifest files, folders and stdin into objects, checking each document.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::validate::{Diagnostic, Input, Options, validate_sources};
use crate::api::DynamicObject;

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

/// Reads files, folders (`*.yaml`, `*.yml`, `*.json`; recursing with `recursive`) and `-` (stdin).
pub fn read_sources(paths: &[PathBuf], recursive: bool) -> Result<Vec<Source>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|source| ReadError {
                    path: "-".into(),
                    source,
                })?;
            out.push(Source {
                name: "-".into(),
                bytes,
            });
        } else if p.is_dir() {
            collect_dir(p, recursive, &mut out)?;
        } else {
            let bytes = std::fs::read(p).map_err(|source| ReadError {
                path: p.display().to_string(),
                source,
            })?;
            out.push(Source {
                name: p.display().to_string(),
                bytes,
            });
        }
    }
    Ok(out)
}

fn collect_dir(dir: &Path, recursive: bool, out: &mut Vec<Source>) -> Result<(), ReadError> {
    let err = |source| ReadError {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                collect_dir(&path, recursive, out)?;
            }
            continue;
        }
        let is_manifest = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if is_manifest {
            let bytes = std::fs::read(&path).map_err(|source| ReadError {
                path: path.display().to_string(),
                source,
            })?;
            out.push(Source {
                name: path.display().to_string(),
                bytes,
            });
        }
    }
    Ok(())
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
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut bytes = Vec::new();
            match std::io::stdin().read_to_end(&mut bytes) {
                Ok(_) => out.push(Input::Source(Source {
                    name: "-".into(),
                    bytes,
                })),
                Err(e) => out.push(Input::Unreadable {
                    name: "-".into(),
                    error: e.to_string(),
                }),
            }
        } else if p.is_dir() {
            list_dir(p, recursive, &mut out);
        } else if p.exists() {
            out.push(Input::File(p.clone()));
        } else {
            out.push(Input::Unreadable {
                name: p.display().to_string(),
                error: "no such file or directory".into(),
            });
        }
    }
    out
}

/// Adds the manifest files of `dir` to `out`, sorted, recursing with `recursive`.
fn list_dir(dir: &Path, recursive: bool, out: &mut Vec<Input>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            out.push(Input::Unreadable {
                name: dir.display().to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    // The entry's type comes from the directory listing itself (no stat per file, which
    // matters for folders of thousands of manifests); a symlink is followed to see what it names.
    let mut found: Vec<(PathBuf, bool)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let path = entry.path();
            let is_dir = match entry.file_type() {
                Ok(t) if !t.is_symlink() => t.is_dir(),
                _ => path.is_dir(),
            };
            Some((path, is_dir))
        })
        .collect();
    // One folder's entries share everything up to their last component, so comparing
    // the bytes of the paths orders them by name, as sorting the paths would.
    found.sort_unstable_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    for (path, is_dir) in found {
        if is_dir {
            if recursive {
                list_dir(&path, recursive, out);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(Input::File(path));
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
