//! Reading manifest files, folders and stdin into objects, checking each document.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::api::{
    API_VERSION, ConfigurationSpec, DynamicObject, EnvironmentSpec, Kind, ObjectMeta, ServiceSpec,
    StackSpec,
};

/// One input: a file's path (or `-`) and its bytes.
#[derive(Clone, Debug)]
pub struct Source {
    /// Where it came from, as the user named it.
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// A problem with one document of one source.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{source_name}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ManifestError {
    /// The file.
    pub source_name: String,
    /// Line and column (1-based), when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and what was expected.
    pub message: String,
}

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

/// Parses every document of a source into objects, checking shape and types against the
/// kind (a stored Service may be a partial overlay). Returns all errors, not the first.
pub fn parse_objects(source: &Source) -> Result<Vec<DynamicObject>, Vec<ManifestError>> {
    let err = |location: Option<(usize, usize)>, message: String| ManifestError {
        source_name: source.name.clone(),
        location,
        message,
    };
    let text = match std::str::from_utf8(&source.bytes) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![err(
                None,
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )]);
        }
    };
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: Value = match serde::Deserialize::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                let loc = e.location().map(|l| (l.line(), l.column()));
                errors.push(err(loc, e.to_string()));
                // serde_yaml cannot resume after a syntax error in a stream.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        match object_from_value(value) {
            Ok(o) => objects.push(o),
            Err(m) => errors.push(err(None, m)),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

/// Checks one document's envelope and its spec's shape; returns the object or why not.
pub fn object_from_value(value: Value) -> Result<DynamicObject, String> {
    let Value::Object(mut map) = value else {
        return Err("a document must be a map with apiVersion, kind, metadata and spec".into());
    };
    let api_version = map.remove("apiVersion");
    if api_version.as_ref().and_then(Value::as_str) != Some(API_VERSION) {
        return Err(format!(
            "apiVersion: expected {API_VERSION:?}, got {}",
            api_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing".into())
        ));
    }
    let kind_value = map.remove("kind");
    let kind: Kind = kind_value
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|k| Kind::ALL.into_iter().find(|x| x.as_str() == k))
        .ok_or_else(|| {
            format!(
                "kind: expected one of Configuration, Environment, Stack, Service, got {}",
                kind_value
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "nothing".into())
            )
        })?;
    let metadata: ObjectMeta =
        serde_json::from_value(map.remove("metadata").unwrap_or(Value::Null))
            .map_err(|e| format!("{kind} metadata: {e}"))?;
    let spec = map
        .remove("spec")
        .unwrap_or(Value::Object(Default::default()));
    map.remove("status");
    if let Some(extra) = map.keys().next() {
        return Err(format!(
            "{kind} {:?}: unknown field {extra:?} (expected apiVersion, kind, metadata, spec)",
            metadata.name
        ));
    }
    check_spec(kind, &spec).map_err(|e| format!("{kind} {:?}: spec: {e}", metadata.name))?;
    Ok(DynamicObject {
        api_version: API_VERSION.to_string(),
        kind,
        metadata: ObjectMeta {
            name: metadata.name,
            labels: metadata.labels,
            annotations: metadata.annotations,
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    })
}

fn check_spec(kind: Kind, spec: &Value) -> Result<(), serde_json::Error> {
    match kind {
        Kind::Configuration => serde_json::from_value::<ConfigurationSpec>(spec.clone()).map(drop),
        Kind::Environment => serde_json::from_value::<EnvironmentSpec>(spec.clone()).map(drop),
        Kind::Stack => serde_json::from_value::<StackSpec>(spec.clone()).map(drop),
        Kind::Service => serde_json::from_value::<ServiceSpec>(strip_nulls(spec)).map(drop),
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
