//! The command line: one file per command; each fills an options struct and calls the
//! library. Errors become messages and exit codes in one place (`cli::error`).

mod apply;
mod build;
mod complete;
mod completion;
mod context;
mod controller;
mod defaults;
mod delete;
mod deploy;
mod describe;
mod diff;
mod error;
mod explain;
mod get;
mod import;
mod jsonpath;
mod keys;
mod logs;
mod manifests;
mod output;
mod planning;
mod ps;
mod render;
mod rollout;
mod scale;
mod schema;
mod seal;
mod selector;
mod swarmref;
mod target;
mod validate;
mod wait;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    Describe(describe::Args),
    Diff(diff::Args),
    Scale(scale::Args),
    Rollout(rollout::Args),
    Ps(ps::Args),
    Logs(logs::Args),
    Completion(completion::Args),
    Controller(controller::Args),
    Keys(keys::Args),
    Seal(seal::Args),
    Validate(validate::Args),
    Explain(explain::Args),
    Schema(schema::Args),
    Render(render::Args),
    Build(build::Args),
    Deploy(deploy::DeployArgs),
    Remove(deploy::RemoveArgs),
    Defaults(defaults::Args),
    Env(import::EnvArgs),
    Import(import::ImportArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    if let Some(code) = complete::answer_request() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(e),
    };
    context::init_logging(&cli.global, matches!(cli.command, Command::Controller(_)));
    // Commands that touch neither etcd nor Docker run on the calling thread: no worker
    // threads to start and stop around a 50 ms `kargo validate`.
    let runtime = if cli.command.is_offline() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return error::report(&CliError::io("cannot start the async runtime", e)),
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(status) => status.into(),
        Err(e) => error::report(&e),
    }
}

/// A command line clap refused: a bare command group (`kargo`, `kargo rollout`) prints its
/// help on stdout and succeeds, as kubectl does; anything else is clap's message and code.
fn parse_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let bare = matches!(
        e.kind(),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !bare {
        e.exit()
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut group = &cmd;
    for word in std::env::args().skip(1) {
        if let Some(sub) = group.find_subcommand(&word) {
            group = sub;
        }
    }
    let help = group.clone().render_help().to_string();
    match output::out_text(&help) {
        Ok(()) => ExitStatus::Success.into(),
        Err(e) => error::report(&e),
    }
}

impl Command {
    /// Whether the command works on files alone (no etcd, no Docker).
    fn is_offline(&self) -> bool {
        matches!(
            self,
            Command::Completion(_)
                | Command::Validate(_)
                | Command::Explain(_)
                | Command::Schema(_)
                | Command::Defaults(_)
                | Command::Env(_)
                | Command::Import(_)
        )
    }
}

async fn run(cli: Cli) -> Result<ExitStatus, CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Apply(a) => apply::run(g, a).await,
        Command::Get(a) => get::run(g, a).await,
        Command::Delete(a) => delete::run(g, a).await,
        Command::Wait(a) => wait::run(g, a).await,
        Command::Describe(a) => describe::run(g, a).await,
        Command::Diff(a) => diff::run(g, a).await,
        Command::Scale(a) => scale::run(g, a).await,
        Command::Rollout(a) => rollout::run(g, a).await,
        Command::Ps(a) => ps::run(g, a).await,
        Command::Logs(a) => logs::run(g, a).await,
        Command::Completion(a) => completion::run(a),
        Command::Controller(a) => controller::run(g, a).await,
        Command::Keys(a) => keys::run(g, a).await,
        Command::Seal(a) => seal::run(g, a).await,
        Command::Validate(a) => validate::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Render(a) => render::run(g, a).await,
        Command::Build(a) => build::run(g, a).await,
        Command::Deploy(a) => deploy::run_deploy(g, a).await,
        Command::Remove(a) => deploy::run_remove(g, a).await,
        Command::Defaults(a) => defaults::run(a),
        Command::Env(a) => import::run_env(a),
        Command::Import(a) => import::run_import(a),
    }
}
