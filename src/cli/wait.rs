//! `kargo wait`: block until objects meet a condition (or are deleted).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::{DynamicObject, Kind};

use super::context::parse_duration;
use super::{CliError, ExitStatus, GlobalArgs};

/// Wait until objects are Ready (or another condition holds, or they are deleted).
///
/// A condition counts only once the controller has observed the object's current
/// generation, so a stale Ready from before an apply does not end the wait.
/// Exit codes: 0 met, 1 timed out or not found, 2 usage or unreachable etcd.
///
/// Example: kargo wait stack/apps --for=condition=Ready --timeout=5m
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `kind/name`, or a kind followed by names (or --all).
    target: String,
    /// More names of the same kind.
    names: Vec<String>,
    /// Every object of the kind.
    #[arg(long)]
    all: bool,
    /// `condition=Ready`, `condition=Ready=False` or `delete`.
    #[arg(long = "for", default_value = "condition=Ready")]
    for_: String,
    /// Give up after this long.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

enum Want {
    Condition(String, String),
    Deleted,
}

fn parse_want(s: &str) -> Result<Want, CliError> {
    if s == "delete" {
        return Ok(Want::Deleted);
    }
    let Some(rest) = s.strip_prefix("condition=") else {
        return Err(CliError::usage(format!(
            "--for={s}: expected condition=TYPE[=STATUS] or delete"
        )));
    };
    let (t, v) = rest.split_once('=').unwrap_or((rest, "True"));
    Ok(Want::Condition(t.to_string(), v.to_string()))
}

fn meets(o: &DynamicObject, type_: &str, value: &str) -> bool {
    let status = o.status.as_ref();
    let observed = status
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64);
    if observed != o.metadata.generation {
        return false;
    }
    status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some(type_)
                && c.get("status")
                    .and_then(Value::as_str)
                    .map(|s| s.eq_ignore_ascii_case(value))
                    == Some(true)
        })
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (kind, mut names): (Kind, Vec<String>) = match args.target.split_once('/') {
        Some((k, n)) => (
            k.parse()
                .map_err(|e: crate::api::UnknownKind| CliError::usage(e.to_string()))?,
            vec![n.to_string()],
        ),
        None => (
            args.target
                .parse()
                .map_err(|e: crate::api::UnknownKind| CliError::usage(e.to_string()))?,
            Vec::new(),
        ),
    };
    names.extend(args.names.iter().cloned());
    if names.is_empty() && !args.all {
        return Err(CliError::usage(
            "name the objects to wait for, or pass --all",
        ));
    }
    let want = parse_want(&args.for_)?;
    let store = g.store().await?;
    let deadline = Instant::now() + args.timeout;
    let tty = std::io::stderr().is_terminal();
    loop {
        let objects: Vec<DynamicObject> = if args.all {
            store.list(kind).await?.items
        } else {
            let mut v = Vec::new();
            for n in &names {
                if let Some(o) = store.get(kind, n).await? {
                    v.push(o);
                } else if matches!(want, Want::Condition(..)) {
                    return Err(CliError::failure(format!("{kind} {n:?} not found")));
                }
            }
            v
        };
        let pending: Vec<String> = match &want {
            Want::Deleted => objects.iter().map(|o| o.reference()).collect(),
            Want::Condition(t, v) => {
                if args.all && objects.is_empty() {
                    return Err(CliError::failure(format!("no {} found", kind.plural())));
                }
                objects
                    .iter()
                    .filter(|o| !meets(o, t, v))
                    .map(|o| o.reference())
                    .collect()
            }
        };
        if pending.is_empty() {
            if tty {
                eprint!("\r\x1b[K");
            }
            for o in &objects {
                let verb = if matches!(want, Want::Deleted) {
                    "deleted"
                } else {
                    "condition met"
                };
                println!("{} {verb}", o.reference());
            }
            if matches!(want, Want::Deleted) {
                for n in &names {
                    println!("{}/{n} deleted", kind.singular());
                }
            }
            return Ok(ExitStatus::Success);
        }
        if Instant::now() >= deadline {
            if tty {
                eprintln!();
            }
            return Err(CliError::failure(format!(
                "timed out after {}s waiting for {}: {}",
                args.timeout.as_secs(),
                args.for_,
                pending.join(", ")
            )));
        }
        if tty {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            eprint!(
                "\r\x1b[Kwaiting for {} ({}s left): {}",
                args.for_,
                left,
                pending.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
