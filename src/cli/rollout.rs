//! `kargo rollout`: restart, status, undo and history of Stacks and Services.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::api::annotations::RESTARTED_AT_ANNOTATION;
use crate::api::conditions::types;
use crate::api::{DynamicObject, Kind};
use crate::store::{ObjectRef, Store, StoreError};

use super::context::parse_duration;
use super::output::{self, render_table};
use super::wait::{Targets, WaitOptions, Want, wait_for};
use super::{CliError, ExitStatus, GlobalArgs, target};
use crate::store::{HistoryRecord, RollbackBy, RollbackStep, roll_back, same_spec};

const EXAMPLES: &str = "Examples:
  kargo rollout restart service web
  kargo rollout restart stack apps
  kargo rollout status stack apps --timeout 5m
  kargo rollout history stack apps
  kargo rollout undo stack apps
  kargo rollout undo service web --to-revision 3";

/// Manage rollouts: restart (a forced redeploy), status, undo (back to a recorded spec), history.
///
/// Every change that rolls a service (a spec, a restart, an undo, a new configuration file)
/// is a new rollout revision of its Stack (1, 2, 3...: `status.rolloutRevision`). The
/// controller records the Service specs of each revision that becomes Ready; `history`
/// lists them and `undo` writes one back as the Services' specs (a new revision).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Redeploy a Service, or every Service of a Stack, with the same spec (new tasks).
    ///
    /// Sets the annotation kargo.dev/restartedAt; the controller turns a new value into a forced update.
    /// Example: kargo rollout restart stack apps
    Restart(Named),
    /// Wait until the rollout revision current now is Ready, showing progress per service.
    ///
    /// The revision is the one the stored objects ask for when the command starts (a
    /// restart, an undo or an apply just written counts); a Ready or a failure of an
    /// earlier revision does not end the wait. On a terminal the progress is redrawn in
    /// place; otherwise one line per change (-q: none). On failure it names the cause.
    /// Exit codes: 0 rolled out, 1 failed (rolled back, paused, past its deadline) or timed out, 2 usage.
    /// Example: kargo rollout status stack apps --timeout 5m
    Status(StatusArgs),
    /// Write back the previous recorded specs of a Stack, or of one Service.
    ///
    /// Without --to-revision: the newest record that differs from what is stored now.
    /// Example: kargo rollout undo stack apps
    Undo(UndoArgs),
    /// List the rollout revisions of a Stack that became Ready (or of the Stack deploying a Service).
    ///
    /// A revision missing from the list never became Ready. CURRENT marks the revision
    /// the Stack is at now.
    /// Example: kargo rollout history stack apps
    History(Named),
}

#[derive(Debug, clap::Args)]
struct Named {
    /// `stack NAME` or `service NAME` (or KIND/NAME).
    #[arg(required = true, num_args = 1..=2, value_name = "KIND NAME | KIND/NAME", add = super::complete::targets())]
    target: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    named: Named,
    /// Give up after this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// The Configuration in force (whose plan says which rollout revision is current).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Print nothing but errors: no progress, no success line.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, clap::Args)]
struct UndoArgs {
    #[command(flatten)]
    named: Named,
    /// Go back to this recorded revision (see `rollout history`).
    #[arg(long)]
    to_revision: Option<i64>,
    /// Show what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
}

fn stack_or_service(named: &Named) -> Result<(Kind, String), CliError> {
    target::one_of(
        &named.target,
        &[Kind::Stack, Kind::Service],
        "name one stack or service",
        |kind| format!("{kind} objects have no rollout: name a stack or a service"),
    )
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    match args.command {
        Sub::Restart(n) => restart(g, &n).await,
        Sub::Status(s) => status(g, &s).await,
        Sub::Undo(u) => undo(g, &u).await,
        Sub::History(n) => show_history(g, &n).await,
    }
}

fn not_found(kind: Kind, name: &str) -> CliError {
    StoreError::NotFound {
        kind,
        name: name.to_string(),
    }
    .into()
}

async fn restart(g: &GlobalArgs, named: &Named) -> Result<ExitStatus, CliError> {
    let (kind, name) = stack_or_service(named)?;
    let store = g.store().await?;
    let services: Vec<String> = match kind {
        Kind::Service => vec![name.clone()],
        _ => {
            let stack = store
                .get(Kind::Stack, &name)
                .await?
                .ok_or_else(|| not_found(Kind::Stack, &name))?;
            string_list(stack.spec.get("services"))
        }
    };
    // Milliseconds, so two restarts within a second are two restarts.
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut status = ExitStatus::Success;
    for svc in &services {
        let result = store
            .modify(Kind::Service, svc, None, |o| {
                o.metadata
                    .annotations
                    .insert(RESTARTED_AT_ANNOTATION.to_string(), now.clone());
            })
            .await;
        match result {
            Ok(_) => output::out(format_args!("service/{svc} restarted"))?,
            // A service from the default catalog only: an empty overlay carries the annotation.
            Err(StoreError::NotFound { .. }) if crate::manifest::catalog_spec(svc).is_some() => {
                let mut overlay = DynamicObject::new(Kind::Service, svc, json!({}));
                overlay
                    .metadata
                    .annotations
                    .insert(RESTARTED_AT_ANNOTATION.to_string(), now.clone());
                store.create(&overlay, None).await?;
                output::out(format_args!("service/{svc} restarted"))?;
            }
            Err(e @ StoreError::NotFound { .. }) if kind == Kind::Stack => {
                output::note(format_args!("error: {e}"));
                status = ExitStatus::Failure;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(status)
}

async fn status(g: &GlobalArgs, args: &StatusArgs) -> Result<ExitStatus, CliError> {
    let (kind, name) = stack_or_service(&args.named)?;
    let store = g.store().await?;
    let done = wait_for(
        &store,
        &Targets::Refs(vec![ObjectRef {
            kind,
            name: name.clone(),
        }]),
        &Want::Condition(types::READY.into(), "True".into()),
        args.timeout,
        WaitOptions {
            fail_fast: true,
            quiet: args.quiet,
            configuration: Some(args.configuration.clone()),
            ..WaitOptions::default()
        },
    )
    .await?;
    if !args.quiet {
        let revision = done
            .first()
            .and_then(|o| o.status.as_ref())
            .and_then(|s| s.get("rolloutRevision"))
            .and_then(Value::as_u64)
            .map(|r| format!(" (revision {r})"))
            .unwrap_or_default();
        output::out(format_args!(
            "{} {name:?} successfully rolled out{revision}",
            kind.singular()
        ))?;
    }
    Ok(ExitStatus::Success)
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The stack that deploys a service: the one its status names, else the first listing it.
async fn stack_of(store: &Store, service: &str) -> Result<String, CliError> {
    if let Some(s) = store.get(Kind::Service, service).await?
        && let Some(stack) = s
            .status
            .as_ref()
            .and_then(|st| st.get("stack"))
            .and_then(Value::as_str)
    {
        return Ok(stack.to_string());
    }
    store
        .list(Kind::Stack)
        .await?
        .items
        .into_iter()
        .find(|st| {
            string_list(st.spec.get("services"))
                .iter()
                .any(|s| s == service)
        })
        .map(|st| st.metadata.name)
        .ok_or_else(|| {
            CliError::failure(format!(
                "service {service:?} is in no stack: it has no rollout history"
            ))
        })
}

/// Services' stored specs (`null` without a Service object), with the objects as read.
type Current = BTreeMap<String, (Value, Option<DynamicObject>)>;

/// The stored specs of services (`null` for a service with no Service object).
async fn current_specs<'a>(
    store: &Store,
    names: impl Iterator<Item = &'a String>,
) -> Result<Current, CliError> {
    let mut out = BTreeMap::new();
    for n in names {
        let obj = store.get(Kind::Service, n).await?;
        let spec = obj.as_ref().map(|o| o.spec.clone()).unwrap_or(Value::Null);
        out.insert(n.clone(), (spec, obj));
    }
    Ok(out)
}

async fn undo(g: &GlobalArgs, args: &UndoArgs) -> Result<ExitStatus, CliError> {
    let (kind, name) = stack_or_service(&args.named)?;
    let store = g.store().await?;
    let stack = match kind {
        Kind::Stack => name.clone(),
        _ => stack_of(&store, &name).await?,
    };
    let records = store.history(&stack).await?;
    if records.is_empty() {
        return Err(CliError::failure(format!(
            "stack {stack:?} has no recorded history yet (it is recorded each time the stack becomes Ready)"
        )));
    }
    let only: Option<&String> = (kind == Kind::Service).then_some(&name);
    let mut chosen: Option<&HistoryRecord> = None;
    for r in records.iter().rev() {
        if args.to_revision.is_some_and(|want| want != r.revision) {
            continue;
        }
        if let Some(svc) = only
            && !r.services.contains_key(svc)
        {
            continue;
        }
        let names: Vec<&String> = r
            .services
            .keys()
            .filter(|k| only.is_none_or(|o| o == *k))
            .collect();
        let current = current_specs(&store, names.into_iter()).await?;
        let differs = current
            .iter()
            .any(|(svc, (spec, _))| !same_spec(&r.services[svc], spec));
        if differs || args.to_revision.is_some() {
            chosen = Some(r);
            break;
        }
    }
    let Some(record) = chosen else {
        return Err(CliError::failure(match args.to_revision {
            Some(rev) => format!(
                "stack {stack:?} has no recorded revision {rev} (see `kargo rollout history stack {stack}`)"
            ),
            None => format!(
                "no recorded revision of stack {stack:?} differs from what is stored: nothing to undo"
            ),
        }));
    };
    let steps = roll_back(
        &store,
        record,
        only.map(String::as_str),
        RollbackBy::Person,
        args.dry_run,
        None,
    )
    .await?;
    let rev = record.revision;
    let mut status = ExitStatus::Success;
    for (svc, step) in steps {
        match step {
            Ok(RollbackStep::Unchanged | RollbackStep::LeftDeleted) => {}
            Ok(RollbackStep::Restored { from, to }) if args.dry_run => {
                output::out(format_args!(
                    "service/{svc} would be rolled back to revision {rev}"
                ))?;
                if let Some(d) = output::unified_diff(
                    &output::to_yaml(&from),
                    &output::to_yaml(&to),
                    &format!("service/{svc} (stored)"),
                    &format!("service/{svc} (revision {rev})"),
                ) {
                    output::out_text(&d)?;
                }
            }
            Ok(RollbackStep::Recreated { .. }) if args.dry_run => output::out(format_args!(
                "service/{svc} would be recreated as at revision {rev} (it was deleted since)"
            ))?,
            Ok(RollbackStep::Restored { .. }) => output::out(format_args!(
                "service/{svc} rolled back to revision {rev} of stack/{stack}"
            ))?,
            Ok(RollbackStep::Recreated { .. }) => output::out(format_args!(
                "service/{svc} recreated as at revision {rev} of stack/{stack} (it was deleted since)"
            ))?,
            Err(e) => {
                output::note(format_args!("error: {e}"));
                status = ExitStatus::Failure;
            }
        }
    }
    Ok(status)
}

async fn show_history(g: &GlobalArgs, named: &Named) -> Result<ExitStatus, CliError> {
    let (kind, name) = stack_or_service(named)?;
    let store = g.store().await?;
    let stack = match kind {
        Kind::Stack => name.clone(),
        _ => stack_of(&store, &name).await?,
    };
    let records = store.history(&stack).await?;
    if records.is_empty() {
        output::note(format_args!("stack {stack:?} has no recorded history yet"));
        return Ok(ExitStatus::Success);
    }
    let at = store
        .get(Kind::Stack, &stack)
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.get("rolloutRevision").and_then(Value::as_i64));
    let mut rows = Vec::new();
    let mut previous: Option<&HistoryRecord> = None;
    for r in &records {
        let changed: Vec<&str> = r
            .services
            .iter()
            .filter(|(svc, spec)| previous.is_none_or(|p| p.services.get(*svc) != Some(*spec)))
            .filter(|(svc, _)| kind == Kind::Stack || *svc == &name)
            .map(|(svc, _)| svc.as_str())
            .collect();
        let is_current = at == Some(r.revision);
        rows.push(vec![
            r.revision.to_string(),
            r.time.clone(),
            if changed.is_empty() {
                "-".into()
            } else {
                changed.join(",")
            },
            if is_current {
                "*".into()
            } else {
                String::new()
            },
        ]);
        previous = Some(r);
    }
    output::out_text(&render_table(
        &["REVISION", "TIME", "CHANGED", "CURRENT"],
        &rows,
        true,
    ))?;
    Ok(ExitStatus::Success)
}
