//! `kargo ps`: the Swarm tasks of a service or a stack, from Docker.

use super::{CliError, ExitStatus, GlobalArgs, output, swarmref, target};

const EXAMPLES: &str = "Examples:
  kargo ps service web
  kargo ps stack apps --all
  kargo ps stack/apps";

/// List the Swarm tasks of a Service or a Stack (like `docker service ps`), from Docker.
///
/// Shows the tasks Swarm wants running, newest first per slot; --all adds the shut-down
/// history with its errors. Exit codes: 0 listed, 1 nothing of that name runs in Swarm,
/// 2 usage or unreachable Docker.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// `service NAME` or `stack NAME` (or KIND/NAME).
    #[arg(required = true, num_args = 1..=2, value_name = "KIND NAME | KIND/NAME", add = super::complete::targets())]
    target: Vec<String>,
    /// Include shut-down and failed tasks.
    #[arg(short, long)]
    all: bool,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (kind, name) = target::one_of(
        &args.target,
        &[crate::api::Kind::Service, crate::api::Kind::Stack],
        "name one service or stack",
        |kind| format!("{kind} objects have no tasks: name a service or a stack"),
    )?;
    let name = &name;
    let swarm = g.swarm().await?;
    let services = swarmref::services_of(&swarm, &g.prefix, kind, name).await?;
    if services.is_empty() {
        return Err(CliError::failure(format!(
            "{} {name:?} has no Swarm service in installation {:?} (not deployed yet?)",
            kind.singular(),
            g.prefix
        )));
    }
    let table = swarmref::tasks_table(&swarm, &services, args.all).await?;
    output::out_text(&table)?;
    Ok(ExitStatus::Success)
}
