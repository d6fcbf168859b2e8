//! `kargo logs`: the logs of a service's tasks, from Docker.

use std::collections::HashSet;

use futures::StreamExt;
use futures::stream::SelectAll;

use crate::api::Kind;
use crate::swarm::{LogChunk, LogOptions};

use super::context::parse_duration;
use super::{CliError, ExitStatus, GlobalArgs, output, swarmref, target};

const EXAMPLES: &str = "Examples:
  kargo logs web
  kargo logs service web
  kargo logs service web -f --tail 20
  kargo logs service/web --since 10m --timestamps";

/// Print the logs of a Service's tasks (stdout here, stderr on stderr), from Docker.
///
/// Each line starts with the task that wrote it (`NAME.SLOT.TASK@NODE | `), as with
/// `docker service logs`; `--raw` leaves it out. With -f, new lines follow until Ctrl-C. A service deployed by several stacks shows
/// each in turn. Exit codes: 0 done, 1 the service does not run in Swarm, 2 usage or
/// unreachable Docker.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The service: NAME, `service NAME` or service/NAME.
    #[arg(required = true, num_args = 1..=2, value_name = "NAME | service NAME | service/NAME", add = super::complete::services())]
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
    /// Leave out the task prefix (`web.1.x7k2m9a0b3c4@node | `) of each line.
    #[arg(long)]
    raw: bool,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let name = service_named(&args.target)?;
    let name = &name;
    let swarm = g.swarm().await?;
    let services = swarmref::services_of(&swarm, &g.prefix, Kind::Service, name).await?;
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
    if args.raw {
        for s in &services {
            let stream = swarm.service_logs(&s.id, &options);
            if print_stream(stream, None, &mut interrupted).await? {
                return Ok(ExitStatus::Success);
            }
        }
        return Ok(ExitStatus::Success);
    }
    let nodes = swarm.node_names().await.unwrap_or_default();
    let mut seen = HashSet::new();
    let mut streams = SelectAll::new();
    let mut width = 0;
    let add_tasks =
        async |streams: &mut SelectAll<_>, seen: &mut HashSet<String>, width: &mut usize| {
            for s in &services {
                let mut tasks = swarm.tasks(&s.id).await?;
                tasks.sort_by(|a, b| a.slot.cmp(&b.slot).then(a.timestamp.cmp(&b.timestamp)));
                for t in tasks {
                    if !seen.insert(t.id.clone()) {
                        continue;
                    }
                    let label = swarmref::task_label(s, &t, &nodes);
                    *width = (*width).max(label.chars().count());
                    let stream = swarm.task_logs(&t.id, &options);
                    streams.push(stream.map(move |chunk| (label.clone(), chunk)).boxed());
                }
            }
            Ok::<(), CliError>(())
        };
    add_tasks(&mut streams, &mut seen, &mut width).await?;
    // Followed, tasks that start later (a restart, a scale) join in, as with docker.
    let mut new_tasks = tokio::time::interval(NEW_TASKS_EVERY);
    new_tasks.tick().await;
    loop {
        let next = tokio::select! {
            _ = &mut interrupted => return Ok(ExitStatus::Success),
            _ = new_tasks.tick(), if args.follow => {
                add_tasks(&mut streams, &mut seen, &mut width).await?;
                continue;
            }
            next = streams.next(), if !streams.is_empty() => next,
        };
        let Some((label, chunk)) = next else {
            if args.follow {
                continue;
            }
            break;
        };
        print_chunk(chunk?, Some(&format!("{label:<width$} | ")))?;
    }
    Ok(ExitStatus::Success)
}

/// How often `logs -f` looks for tasks started since it began.
const NEW_TASKS_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The service `kargo logs` names: `service NAME`, `service/NAME`, or a bare NAME (as
/// `kubectl logs NAME` means a pod).
fn service_named(words: &[String]) -> Result<String, CliError> {
    if let [name] = words
        && !name.contains('/')
    {
        return Ok(name.clone());
    }
    let (_, name) = target::one_of(words, &[Kind::Service], "name one service", |_| {
        "logs are per service: kargo logs service NAME (see `kargo ps stack NAME` for a stack)"
            .to_string()
    })?;
    Ok(name)
}

/// Prints a stream to its end (or Ctrl-C: `true`), each line after `prefix`.
async fn print_stream(
    mut stream: futures::stream::BoxStream<'static, Result<LogChunk, crate::swarm::SwarmError>>,
    prefix: Option<&str>,
    interrupted: &mut std::pin::Pin<&mut impl std::future::Future>,
) -> Result<bool, CliError> {
    loop {
        let chunk = tokio::select! {
            _ = interrupted.as_mut() => return Ok(true),
            c = stream.next() => c,
        };
        match chunk {
            Some(chunk) => print_chunk(chunk?, prefix)?,
            None => return Ok(false),
        }
    }
}

/// Prints one chunk of a task's output (stdout here, stderr on stderr), each of its lines
/// after `prefix`.
fn print_chunk(chunk: LogChunk, prefix: Option<&str>) -> Result<(), CliError> {
    let (bytes, to_stdout) = match chunk {
        LogChunk::Stdout(b) => (b, true),
        LogChunk::Stderr(b) => (b, false),
    };
    let bytes = match prefix {
        Some(prefix) => prefixed(&bytes, prefix),
        None => bytes,
    };
    if to_stdout {
        output::out_bytes(&bytes)
    } else {
        output::err_bytes(&bytes);
        Ok(())
    }
}

/// `prefix` before each line of `bytes`.
fn prefixed(bytes: &[u8], prefix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + prefix.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_gets_the_prefix() {
        assert_eq!(prefixed(b"a\nb\n", "web.1 | "), b"web.1 | a\nweb.1 | b\n");
        assert_eq!(prefixed(b"partial", "x | "), b"x | partial");
    }

    #[test]
    fn a_bare_name_is_a_service() {
        let words = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(service_named(&words("web")).ok(), Some("web".to_string()));
        assert_eq!(
            service_named(&words("svc web")).ok(),
            Some("web".to_string())
        );
        assert_eq!(
            service_named(&words("service/web")).ok(),
            Some("web".to_string())
        );
        assert!(service_named(&words("stack web")).is_err());
    }
}
