//! `kargo env import` and `kargo import compose`: from an old Kargo workspace or a compose
//! file to kargo manifests, printed on stdout (warnings on stderr, never dropped).

use std::path::PathBuf;

use serde_json::Value;

use crate::import::compose::import_compose_file;
use crate::import::envfile::import_env_files;

use super::output::{note, out_text, to_yaml};
use super::{CliError, ExitStatus};

/// Turn Kargo env files into an Environment and Stack manifests.
///
/// Files are read in order, as Kargo sourced them (`.env.default` then `.env`; later
/// assignments win). What cannot be carried over is a warning naming file and line.
///
/// Example: kargo env import .env.default .env --name production > env.yaml
#[derive(Debug, clap::Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    command: EnvCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EnvCommand {
    /// Read Kargo env files and print an Environment and its Stacks.
    ///
    /// Example: kargo env import .env.default .env --name production > env.yaml
    Import {
        /// The env files, in sourcing order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Name of the Environment.
        #[arg(long, default_value = "main")]
        name: String,
    },
}

/// Import from other formats.
///
/// Example: kargo import compose docker-compose.yml --stack apps > apps.yaml
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    command: ImportCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ImportCommand {
    /// A compose v3 file → Service manifests, a Stack, and Configuration files.
    ///
    /// What `docker stack deploy` would not honour or kargo cannot map is a warning by key.
    ///
    /// Example: kargo import compose docker-compose.yml --stack apps > apps.yaml
    Compose {
        /// The compose file.
        file: PathBuf,
        /// Name of the Stack to make.
        #[arg(long)]
        stack: String,
    },
}

fn documents(docs: impl IntoIterator<Item = Value>) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&to_yaml(&d));
    }
    out
}

pub(super) fn run_env(args: EnvArgs) -> Result<ExitStatus, CliError> {
    let EnvCommand::Import { files, name } = args.command;
    let result = import_env_files(&files, &name).map_err(|e| CliError::usage(e.to_string()))?;
    for w in &result.warnings {
        note(format_args!(
            "warning: {}:{}: {}",
            w.file, w.line, w.message
        ));
    }
    out_text(&documents(
        std::iter::once(result.environment).chain(result.stacks),
    ))?;
    Ok(ExitStatus::Success)
}

pub(super) fn run_import(args: ImportArgs) -> Result<ExitStatus, CliError> {
    let ImportCommand::Compose { file, stack } = args.command;
    let result = import_compose_file(&file, &stack).map_err(|e| CliError::usage(e.to_string()))?;
    for w in &result.warnings {
        note(format_args!("warning: {w}"));
    }
    let docs = result
        .configuration
        .into_iter()
        .chain(std::iter::once(result.stack))
        .chain(result.services);
    out_text(&documents(docs))?;
    Ok(ExitStatus::Success)
}
