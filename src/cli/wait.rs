//! `kargo wait`: block until objects meet a condition, a JSONPath value, or are deleted.
//! The waiting itself ([`wait_for`]) also serves `apply --wait`, `delete --wait` and
//! `rollout status`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::api::conditions::types;
use crate::api::{DynamicObject, Kind};
use crate::store::{ObjectRef, Store};

use super::context::parse_duration;
use super::jsonpath::{Template, display};
use super::output::{self, Progress, ready_condition};
use super::{CliError, ExitStatus, GlobalArgs, target};

const EXAMPLES: &str = "Examples:
  kargo wait stack/apps --for=condition=Ready --timeout=5m
  kargo wait service web db --for=condition=Ready=False
  kargo wait service/web --for=jsonpath='{.status.runningTasks}'=2
  kargo wait stack/old --for=delete --timeout=60s";

/// Wait until objects are Ready, another condition holds, a JSONPath has a value, or they are deleted.
///
/// A condition counts only once the controller has observed the object's current
/// generation, so a stale Ready from before an apply does not end the wait.
/// Exit codes: 0 met, 1 timed out or not found, 2 usage or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// KIND/NAME..., or a kind followed by names (or --all).
    #[arg(required = true, value_name = "KIND/NAME | KIND NAME...", add = super::complete::targets())]
    targets: Vec<String>,
    /// Every object of the kind.
    #[arg(long)]
    all: bool,
    /// `condition=TYPE[=STATUS]`, `delete`, or `jsonpath=TEMPLATE[=VALUE]`.
    #[arg(long = "for", default_value = "condition=Ready")]
    for_: String,
    /// Give up after this long (e.g. 30s, 5m); 0 checks once, as kubectl's.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

/// What is waited for.
#[derive(Clone, Debug)]
pub(super) enum Want {
    /// A status condition with a status (case-insensitive), at the current generation.
    Condition(String, String),
    /// The object is gone from the store.
    Deleted,
    /// A JSONPath selects something (equal to the value, when one is given).
    JsonPath(Template, Option<String>),
    /// Ready at the current generation, or observed as not deployed (`apply --wait`).
    Settled,
}

/// Ready=False reasons of objects the controller does not deploy: nothing to wait for.
const NOT_DEPLOYED_REASONS: &[&str] = &["NotDeployed", "NotInForce", "Suspended"];

/// Reasons after which a Ready=False will not turn True without a new spec (fail fast).
/// Problems that other objects can clear (a missing Service, an unresolved variable)
/// are not among them: an apply writes its objects one after the other.
const TERMINAL_REASONS: &[&str] = &[
    "RolledBack",
    "UpdatePaused",
    "UpdateFailed",
    "ProgressDeadlineExceeded",
];

/// Splits `TEMPLATE=VALUE` at the `=` that is outside braces, brackets and quotes.
fn split_jsonpath(s: &str) -> (String, Option<String>) {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    for (pos, &(i, c)) in chars.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[' | '(') => depth += 1,
            (None, '}' | ']' | ')') => depth -= 1,
            (None, '=') if depth == 0 => {
                let next = chars.get(pos + 1).map(|x| x.1);
                let prev = pos.checked_sub(1).and_then(|p| chars.get(p)).map(|x| x.1);
                if next != Some('=') && prev != Some('=') && prev != Some('!') {
                    return (s[..i].to_string(), Some(s[i + 1..].to_string()));
                }
            }
            _ => {}
        }
    }
    (s.to_string(), None)
}

impl Want {
    /// Parses `--for`.
    pub(super) fn parse(s: &str) -> Result<Want, CliError> {
        if s == "delete" {
            return Ok(Want::Deleted);
        }
        if let Some(rest) = s.strip_prefix("jsonpath=") {
            let (path, value) = split_jsonpath(rest);
            let path = path.trim_matches('\'');
            let t = Template::parse(path).map_err(|e| CliError::usage(e.to_string()))?;
            return Ok(Want::JsonPath(t, value));
        }
        let Some(rest) = s.strip_prefix("condition=") else {
            return Err(CliError::usage(format!(
                "--for={s}: expected condition=TYPE[=STATUS], delete, or jsonpath=TEMPLATE[=VALUE]"
            )));
        };
        let (t, v) = rest.split_once('=').unwrap_or((rest, "True"));
        if t.is_empty() {
            return Err(CliError::usage(format!(
                "--for={s}: the condition type is empty"
            )));
        }
        Ok(Want::Condition(t.to_string(), v.to_string()))
    }

    fn met(&self, o: &DynamicObject) -> bool {
        match self {
            Want::Deleted => false,
            Want::Condition(t, v) => condition_met(o, t, v),
            Want::Settled => {
                condition_met(o, types::READY, "True")
                    || (condition_met(o, types::READY, "False")
                        && ready_condition(o)
                            .and_then(|c| c.get("reason"))
                            .and_then(Value::as_str)
                            .is_some_and(|r| NOT_DEPLOYED_REASONS.contains(&r)))
            }
            Want::JsonPath(template, value) => {
                let root = serde_json::to_value(output::redacted(o)).unwrap_or(Value::Null);
                let found = template.select(&root);
                match value {
                    None => !found.is_empty(),
                    Some(v) => found.iter().any(|f| &display(f) == v),
                }
            }
        }
    }

    fn word(&self) -> &'static str {
        match self {
            Want::Deleted => "deleted",
            _ => "condition met",
        }
    }
}

/// True when the controller observed the current generation and the condition has that status.
pub(super) fn condition_met(o: &DynamicObject, type_: &str, value: &str) -> bool {
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
                    .is_some_and(|s| s.eq_ignore_ascii_case(value))
        })
}

/// Why an object's rollout failed, when its Ready condition at the current generation
/// is False with a reason that will not clear by itself.
pub(super) fn failed(o: &DynamicObject) -> Option<String> {
    let observed = o
        .status
        .as_ref()
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64);
    if observed != o.metadata.generation {
        return None;
    }
    let c = ready_condition(o)?;
    let reason = c.get("reason").and_then(Value::as_str)?;
    (c.get("status").and_then(Value::as_str) == Some("False") && TERMINAL_REASONS.contains(&reason))
        .then(|| {
            let message = c.get("message").and_then(Value::as_str).unwrap_or("");
            format!("{}: {reason}: {message}", o.reference())
        })
}

/// A short account of where an object is, for progress lines and timeouts.
pub(super) fn progress_of(o: &DynamicObject) -> String {
    let status = o.status.as_ref();
    let n = |f: &str| status.and_then(|s| s.get(f)).and_then(Value::as_u64);
    let counts = match o.kind {
        Kind::Service => {
            n("desiredTasks").map(|d| format!(" {}/{d} tasks", n("runningTasks").unwrap_or(0)))
        }
        Kind::Stack => {
            n("servicesTotal").map(|t| format!(" {}/{t} services", n("servicesReady").unwrap_or(0)))
        }
        _ => None,
    }
    .unwrap_or_default();
    let ready = ready_condition(o).map(|c| {
        let get = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("");
        format!(" Ready={} {}", get("status"), get("reason"))
    });
    format!(
        "{}{}{counts}",
        o.reference(),
        ready.unwrap_or_else(|| " (no status yet)".into())
    )
}

/// What to wait on: named objects, or every object of a kind.
pub(super) enum Targets {
    /// These objects.
    Refs(Vec<ObjectRef>),
    /// Every object of this kind (at least one must exist unless waiting for deletion).
    All(Kind),
}

/// How a wait ends early.
pub(super) struct WaitOptions {
    /// Stop with a failure when an object's rollout failed (see [`failed`]).
    pub fail_fast: bool,
    /// Print `kind/name condition met` lines on success.
    pub print: bool,
}

/// Waits until every target meets `want`, reading the store on each change it watches
/// (and at least every second). A progress line shows on a terminal.
///
/// Errors (exit 1): a named object does not exist (unless waiting for deletion), the
/// timeout passed, or with `fail_fast` a rollout failed. Unreachable etcd exits 2.
pub(super) async fn wait_for(
    store: &Store,
    targets: &Targets,
    want: &Want,
    timeout: Duration,
    options: WaitOptions,
) -> Result<(), CliError> {
    // A timeout too far off to add is no deadline at all: the wait ends when it is met.
    let deadline = Instant::now().checked_add(timeout);
    let mut progress = Progress::new();
    let mut changes = None;
    loop {
        let list = store.list_all().await?;
        let find = |r: &ObjectRef| {
            list.items
                .iter()
                .find(|o| o.kind == r.kind && o.metadata.name == r.name)
        };
        let refs: Vec<ObjectRef> = match targets {
            Targets::Refs(r) => r.clone(),
            Targets::All(k) => list
                .items
                .iter()
                .filter(|o| o.kind == *k)
                .map(|o| ObjectRef {
                    kind: o.kind,
                    name: o.metadata.name.clone(),
                })
                .collect(),
        };
        if let Targets::All(k) = targets
            && refs.is_empty()
            && !matches!(want, Want::Deleted)
        {
            progress.clear();
            return Err(CliError::failure(format!("no {} found", k.plural())));
        }
        let mut pending = Vec::new();
        for r in &refs {
            match (find(r), want) {
                (None, Want::Deleted) => {}
                (None, _) => {
                    progress.clear();
                    return Err(CliError::failure(format!(
                        "{} {:?} not found",
                        r.kind, r.name
                    )));
                }
                (Some(o), _) => {
                    if options.fail_fast
                        && let Some(why) = failed(o)
                    {
                        progress.clear();
                        return Err(CliError::failure(format!("rollout failed: {why}")));
                    }
                    if !want.met(o) {
                        pending.push(progress_of(o));
                    }
                }
            }
        }
        if pending.is_empty() {
            progress.clear();
            if options.print {
                for r in &refs {
                    output::out(format_args!("{r} {}", want.word()))?;
                }
            }
            return Ok(());
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            progress.clear();
            return Err(CliError::failure(format!(
                "timed out after {} waiting: {}",
                humanize(timeout),
                pending.join("; ")
            )));
        }
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(now));
        progress.show(&format!(
            "waiting ({} left): {}",
            humanize(left),
            pending.join("; ")
        ));
        if changes.is_none() {
            changes = store.watch(list.revision + 1).await.ok();
        }
        let tick = left.min(Duration::from_secs(1));
        match changes.as_mut() {
            Some(stream) => {
                tokio::select! {
                    ev = stream.next() => if !matches!(ev, Some(Ok(_))) { changes = None },
                    _ = tokio::time::sleep(tick) => {}
                }
            }
            None => tokio::time::sleep(tick.min(Duration::from_millis(500))).await,
        }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let want = Want::parse(&args.for_)?;
    let (kind, refs) = target::refs(&args.targets)?;
    let targets = match (args.all, kind, refs.is_empty()) {
        (true, Some(k), true) => Targets::All(k),
        (true, _, _) => {
            return Err(CliError::usage("--all takes a kind and no names"));
        }
        (false, _, true) => {
            return Err(CliError::usage(
                "name the objects to wait for, or pass --all",
            ));
        }
        (false, _, false) => Targets::Refs(refs),
    };
    let store = g.store().await?;
    wait_for(
        &store,
        &targets,
        &want,
        args.timeout,
        WaitOptions {
            fail_fast: false,
            print: true,
        },
    )
    .await?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_flags_parse() {
        assert!(matches!(Want::parse("delete"), Ok(Want::Deleted)));
        assert!(matches!(
            Want::parse("condition=Ready"),
            Ok(Want::Condition(t, v)) if t == "Ready" && v == "True"
        ));
        assert!(matches!(
            Want::parse("jsonpath={.status.runningTasks}=2"),
            Ok(Want::JsonPath(_, Some(v))) if v == "2"
        ));
        assert!(matches!(
            Want::parse(r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}=True"#),
            Ok(Want::JsonPath(_, Some(v))) if v == "True"
        ));
        assert!(matches!(
            Want::parse("jsonpath=.status.stack"),
            Ok(Want::JsonPath(_, None))
        ));
        assert!(Want::parse("ready").is_err());
        assert!(Want::parse("condition=").is_err());
    }
}
