//! `kargo env import`, `kargo import compose` and `kargo import kargo`: from an old Kargo
//! workspace or a compose file to kargo manifests, printed on stdout (warnings on stderr, never dropped).

use std::path::PathBuf;

use serde_json::Value;

use crate::import::compose::import_compose_file;
use crate::import::envfile::import_env_files;
use crate::import::kargo::import_kargo_workspace;

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
    /// A Kargo workspace (`.env`, `deploy/*.yml`, `configs/`) → one whole kargo workspace.
    ///
    /// Prints the Configuration `main`, its Environment, the Stacks of `STACKS`, the
    /// Services of the `deploy/` fragments and their files. On stderr: what was not
    /// carried over (hooks, templates, by name) and the variables to give, secrets first.
    ///
    /// Example: kargo import kargo ~/kargo-workspace > workspace.yaml
    Kargo {
        /// The workspace folder.
        dir: PathBuf,
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
    let (file, stack) = match args.command {
        ImportCommand::Compose { file, stack } => (file, stack),
        ImportCommand::Kargo { dir } => return run_kargo(&dir),
    };
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

fn run_kargo(dir: &std::path::Path) -> Result<ExitStatus, CliError> {
    let result = import_kargo_workspace(dir).map_err(|e| CliError::usage(e.to_string()))?;
    for w in &result.warnings {
        note(format_args!("warning: {w}"));
    }
    for file in &result.not_carried {
        note(format_args!(
            "not carried over: {file} (Kargo ran it around a deploy or rendered it; kargo does not)"
        ));
    }
    if !result.secrets.is_empty() {
        note(format_args!(
            "secrets to give (set them in environment/main's variables): {}",
            result.secrets.join(" ")
        ));
    }
    if !result.unset.is_empty() {
        note(format_args!(
            "variables no file sets (empty strings unless given): {}",
            result.unset.join(" ")
        ));
    }
    out_text(&documents(result.documents))?;
    Ok(ExitStatus::Success)
}
