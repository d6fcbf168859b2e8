//! Reading `-f` inputs into checked objects, for apply, diff and delete.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::api::{DynamicObject, Kind};
use crate::manifest::load::{parse_objects, read_sources};
use crate::store::{ObjectRef, Store};

use super::{CliError, output};

/// Reads files, folders (`-R` to recurse) and `-`, checks every document, and returns the
/// objects sorted so referenced kinds come first. Any invalid document fails the whole
/// read (exit 1) after every problem is printed; an unreadable path is a usage error.
pub fn load(files: &[PathBuf], recursive: bool) -> Result<Vec<DynamicObject>, CliError> {
    let sources = read_sources(files, recursive).map_err(|e| CliError::usage(e.to_string()))?;
    let mut objects = match parse_objects(&sources) {
        Ok(o) => o,
        Err(errors) => {
            for e in &errors {
                output::note(format_args!("error: {e}"));
            }
            return Err(CliError::failure(format!(
                "{} problem(s) in the manifests; nothing was written",
                errors.len()
            )));
        }
    };
    if objects.is_empty() {
        return Err(CliError::usage("no objects found in the given files"));
    }
    let mut seen = BTreeSet::new();
    for o in &objects {
        if !seen.insert((o.kind, o.metadata.name.clone())) {
            return Err(CliError::failure(format!(
                "{} is given twice in the manifests; nothing was written",
                o.reference()
            )));
        }
    }
    // Referenced kinds first, so a controller watching sees complete pictures sooner.
    objects.sort_by_key(|o| o.kind);
    Ok(objects)
}

/// The Configuration in force (if it exists) and its Environment: deleting either
/// changes what the whole installation deploys, so it needs `--force`.
pub async fn in_force(store: &Store, configuration: &str) -> Result<Vec<ObjectRef>, CliError> {
    let mut out = Vec::new();
    if let Some(cfg) = store.get(Kind::Configuration, configuration).await? {
        out.push(ObjectRef {
            kind: Kind::Configuration,
            name: configuration.to_string(),
        });
        if let Some(env) = cfg.spec.get("environment").and_then(|v| v.as_str()) {
            out.push(ObjectRef {
                kind: Kind::Environment,
                name: env.to_string(),
            });
        }
    }
    Ok(out)
}

/// The refusal for deleting an object in force without `--force`.
pub fn refuse_in_force(r: &ObjectRef, configuration: &str) -> CliError {
    let what = match r.kind {
        Kind::Configuration => {
            format!("the Configuration in force (--configuration {configuration})")
        }
        _ => format!("the Environment of the Configuration in force ({configuration})"),
    };
    CliError::failure(format!(
        "{r} is {what}: deleting it changes what every stack deploys; pass --force to delete it anyway"
    ))
}
