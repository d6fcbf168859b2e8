//! The command line: one file per command; each fills an options struct and calls the
//! library. Errors become messages and exit codes in one place ([`error`]).

mod apply;
mod context;
mod controller;
mod delete;
mod error;
mod get;
mod output;
mod wait;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use context::GlobalArgs;
pub use error::{CliError, ExitStatus};

/// kargo: Kubernetes-style declarative deployments for Docker Swarm.
///
/// Manifests (Configuration, Environment, Stack, Service) are kept in etcd; `kargo
/// controller` reconciles them onto Swarm and writes status back.
#[derive(Debug, Parser)]
#[command(
    name = "kargo",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Apply(apply::Args),
    Get(get::Args),
    Delete(delete::Args),
    Wait(wait::Args),
    Controller(controller::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    context::init_logging(&cli.global);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return error::report(&CliError::io("cannot start the async runtime", e)),
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(status) => status.into(),
        Err(e) => error::report(&e),
    }
}

async fn run(cli: Cli) -> Result<ExitStatus, CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Apply(a) => apply::run(g, a).await,
        Command::Get(a) => get::run(g, a).await,
        Command::Delete(a) => delete::run(g, a).await,
        Command::Wait(a) => wait::run(g, a).await,
        Command::Controller(a) => controller::run(g, a).await,
    }
}
