//! `kargo apply`: create or update objects from manifests.

use std::path::PathBuf;

use crate::manifest::load::{parse_objects, read_sources};

use super::{CliError, ExitStatus, GlobalArgs};

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
    // Referenced kinds first, so a controller watching sees complete pictures sooner.
    objects.sort_by_key(|o| o.kind);
    let store = g.store().await?;
    for obj in &objects {
        let outcome = store.apply(obj).await?;
        println!("{} {}", obj.reference(), outcome.word());
    }
    Ok(ExitStatus::Success)
}
