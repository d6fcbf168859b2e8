//! `kargo apply`: create or update objects from manifests.

use std::path::PathBuf;

use crate::api::DynamicObject;
use crate::manifest::load::{parse_objects, read_sources};
use crate::store::{Store, StoreError};

use super::{CliError, ExitStatus, GlobalArgs};

/// How many times a conflicting update is retried after re-reading.
const CONFLICT_RETRIES: usize = 5;

/// Create or update objects from manifest files.
///
/// Every document is checked first; when any is invalid nothing is written.
///
/// Example: kargo apply -f manifests/ -R
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, folders or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
}

/// What apply did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and was the same.
    Unchanged,
}

impl Applied {
    fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let sources =
        read_sources(&args.files, args.recursive).map_err(|e| CliError::usage(e.to_string()))?;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for s in &sources {
        match parse_objects(s) {
            Ok(o) => objects.extend(o),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        return Err(CliError::failure(format!(
            "{} invalid document(s); nothing was applied",
            errors.len()
        )));
    }
    if objects.is_empty() {
        return Err(CliError::usage("no objects found in the given files"));
    }
    let store = g.store().await?;
    for obj in &objects {
        let outcome = apply_object(&store, obj).await?;
        println!("{} {}", obj.reference(), outcome.word());
    }
    Ok(ExitStatus::Success)
}

/// Creates the object or updates its spec, labels and annotations, retrying on a conflict
/// by re-reading (a bounded number of times).
pub async fn apply_object(store: &Store, desired: &DynamicObject) -> Result<Applied, StoreError> {
    let mut attempt = 1;
    loop {
        match apply_once(store, desired).await {
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. })
                if attempt < CONFLICT_RETRIES =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn apply_once(store: &Store, desired: &DynamicObject) -> Result<Applied, StoreError> {
    let Some(current) = store.get(desired.kind, &desired.metadata.name).await? else {
        store.create(desired, None).await?;
        return Ok(Applied::Created);
    };
    let mut next = current;
    next.spec = desired.spec.clone();
    next.metadata.labels = desired.metadata.labels.clone();
    next.metadata.annotations = desired.metadata.annotations.clone();
    let written = store.update(&next, None).await?;
    Ok(if written.changed {
        Applied::Configured
    } else {
        Applied::Unchanged
    })
}
