//! `kargo logs`: the logs of a service's tasks, from Docker.

use futures::StreamExt;

use crate::api::Kind;
use crate::swarm::{LogChunk, LogOptions};

use super::context::parse_duration;
use super::{CliError, ExitStatus, GlobalArgs, output, swarmref, target};

const EXAMPLES: &str = "Examples:
  kargo logs service web
  kargo logs service web -f --tail 20
  kargo logs service/web --since 10m --timestamps";

/// Print the logs of a Service's tasks (stdout here, stderr on stderr), from Docker.
///
/// With -f, new lines follow until Ctrl-C. A service deployed by several stacks shows
/// each in turn. Exit codes: 0 done, 1 the service does not run in Swarm, 2 usage or
/// unreachable Docker.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// `service NAME` (or service/NAME).
    #[arg(required = true, num_args = 1..=2, value_name = "service NAME | service/NAME", add = super::complete::services())]
    target: Vec<String>,
    /// Keep printing new lines.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines of each task.
    #[arg(long, value_name = "N")]
    tail: Option<u64>,
    /// Only lines newer than this (e.g. 10m, 1h).
    #[arg(long, value_parser = parse_duration)]
    since: Option<std::time::Duration>,
    /// Show the daemon's timestamp on each line.
    #[arg(short, long)]
    timestamps: bool,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (kind, name) = target::one_of(&args.target, &[Kind::Service], "name one service", |_| {
        "logs are per service: kargo logs service NAME (see `kargo ps stack NAME` for a stack)"
            .to_string()
    })?;
    let name = &name;
    let swarm = g.swarm().await?;
    let services = swarmref::services_of(&swarm, &g.prefix, kind, name).await?;
    if services.is_empty() {
        return Err(CliError::failure(format!(
            "service {name:?} has no Swarm service in installation {:?} (not deployed yet?)",
            g.prefix
        )));
    }
    let since = args.since.map(|d| {
        chrono::Utc::now().timestamp() - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
    });
    let options = LogOptions {
        follow: args.follow,
        tail: args.tail,
        since,
        timestamps: args.timestamps,
    };
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    for s in &services {
        let mut stream = swarm.service_logs(&s.id, &options);
        loop {
            let chunk = tokio::select! {
                _ = &mut interrupted => return Ok(ExitStatus::Success),
                c = stream.next() => c,
            };
            match chunk {
                Some(Ok(LogChunk::Stdout(b))) => output::out_bytes(&b)?,
                Some(Ok(LogChunk::Stderr(b))) => output::err_bytes(&b),
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
    }
    Ok(ExitStatus::Success)
}
