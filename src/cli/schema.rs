//! `kargo schema`: print or write the JSON Schemas of the manifests.

use std::path::PathBuf;

use crate::api::Kind;
use crate::api::schema::{self, Mode};

use super::{CliError, ExitStatus, output};

const EXAMPLES: &str = "Examples:
  kargo schema > kargo.json            # the umbrella schema of any kargo document
  kargo schema service                 # the Service schema
  kargo schema service --merged        # what a merged, interpolated Service must satisfy
  kargo schema --out schemas/          # regenerate the repository's schemas/";

/// Print the JSON Schemas (draft-07) of kargo manifests, or write them to a folder.
///
/// Without KIND, the umbrella schema `kargo.json` (any kind, picked by `kind`); with KIND,
/// that kind's schema. `--out DIR` writes `kargo.json` and one file per kind (or only
/// KIND's) into DIR instead of printing. Editors use these files through a
/// `# yaml-language-server: $schema=...` modeline.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A kind (configuration, environment, stack, service, or their short names).
    kind: Option<String>,
    /// Write the schema files into this folder instead of printing.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The merged mode: the result of layering and interpolation, with `image` required and no nulls.
    #[arg(long)]
    merged: bool,
}

pub(super) fn run(args: Args) -> Result<ExitStatus, CliError> {
    let kind: Option<Kind> = match &args.kind {
        Some(word) => Some(
            word.parse()
                .map_err(|e: crate::api::UnknownKind| CliError::usage(e.to_string()))?,
        ),
        None => None,
    };
    let mode = if args.merged {
        Mode::Merged
    } else {
        Mode::Stored
    };
    let files: Vec<(String, String)> = match (kind, args.merged) {
        (Some(kind), _) => vec![(
            schema::file_name(kind),
            schema::pretty(&schema::kind_schema(kind, mode)),
        )],
        (None, false) => schema::schema_files(),
        (None, true) => vec![(
            "kargo.json".into(),
            schema::pretty(&schema::umbrella_schema(mode)),
        )],
    };
    match &args.out {
        None => {
            let text = match (kind, args.merged) {
                (None, false) => schema::pretty(&schema::umbrella_schema(Mode::Stored)),
                _ => files.iter().map(|(_, t)| t.as_str()).collect(),
            };
            output::out_text(&text)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::io(&dir.display().to_string(), e))?;
            for (name, text) in &files {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .map_err(|e| CliError::io(&path.display().to_string(), e))?;
                output::out(format_args!("wrote {}", path.display()))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}
