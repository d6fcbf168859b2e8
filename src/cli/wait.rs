//! `kargo wait`: block until objects meet a condition, a JSONPath value, or are deleted.
//! The waiting itself ([`wait_for`]) also serves `apply --wait`, `delete --wait` and
//! `rollout status`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::api::conditions::types;
use crate::api::{DynamicObject, Kind};
use crate::controller::stack_spec_hash;
use crate::store::{ObjectRef, Store};

use super::context::parse_duration;
use super::jsonpath::{Template, display};
use super::output::{self, Progress, ready_condition};
use super::{CliError, ExitStatus, GlobalArgs, planning, target};

const EXAMPLES: &str = "Examples:
  kargo wait stack/apps --for=condition=Ready --timeout=5m
  kargo wait service web db --for=condition=Ready=False
  kargo wait service/web --for=jsonpath='{.status.runningTasks}'=2
  kargo wait stack/old --for=delete --timeout=60s";

/// Wait until objects are Ready, another condition holds, a JSONPath has a value, or they are deleted.
///
/// A condition counts only once the controller has taken what is asked when the wait
/// starts: the object's current generation and, for deployed Stacks and Services (and
/// the Configuration in force and its Environment), the rollout revision of the specs
/// asked for then (a restart, an undo, a new configuration file). A Ready or a failure of
/// an earlier revision never ends the wait. Progress shows on stderr (-q: none).
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
    /// The Configuration in force (whose plan says which rollout revision is current).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Print nothing but errors: no progress, no `condition met` lines.
    #[arg(short, long)]
    quiet: bool,
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
            format!("{}: {reason}: {message}", named(o))
        })
}

/// `kind/name` with its rollout revision, when it has one.
fn named(o: &DynamicObject) -> String {
    match status_u64(o, "rolloutRevision") {
        Some(r) => format!("{} (revision {r})", o.reference()),
        None => o.reference().to_string(),
    }
}

fn status_u64(o: &DynamicObject, field: &str) -> Option<u64> {
    o.status.as_ref()?.get(field)?.as_u64()
}

fn status_str<'a>(o: &'a DynamicObject, field: &str) -> Option<&'a str> {
    o.status.as_ref()?.get(field)?.as_str()
}

/// A short account of where an object is, for progress lines and timeouts: its
/// revision, tasks or services, Swarm's update state and its Ready condition.
pub(super) fn progress_of(o: &DynamicObject) -> String {
    let n = |f: &str| status_u64(o, f);
    let mut parts = Vec::new();
    match o.kind {
        Kind::Service => {
            if let Some(d) = n("desiredTasks") {
                parts.push(format!("{}/{d} tasks", n("runningTasks").unwrap_or(0)));
            }
            if let Some(u) = status_str(o, "updateState") {
                parts.push(format!("update {u}"));
            }
        }
        Kind::Stack => {
            if let Some(t) = n("servicesTotal") {
                parts.push(format!(
                    "{}/{t} services Ready",
                    n("servicesReady").unwrap_or(0)
                ));
            }
        }
        _ => {}
    }
    match ready_condition(o) {
        Some(c) => {
            let get = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("");
            let mut ready = format!("Ready={} {}", get("status"), get("reason"));
            // A Progressing message repeats the counts: only other causes are worth the room.
            let says_more = !matches!(get("reason"), "Progressing" | "Converged");
            if get("status") != "True" && says_more && !get("message").is_empty() {
                ready.push_str(&format!(" ({})", get("message")));
            }
            parts.push(ready);
        }
        None => parts.push("no status yet".into()),
    }
    format!("{}: {}", named(o), parts.join(", "))
}

/// What to wait on: named objects, or every object of a kind.
pub(super) enum Targets {
    /// These objects.
    Refs(Vec<ObjectRef>),
    /// Every object of this kind (at least one must exist unless waiting for deletion).
    All(Kind),
}

/// How a wait ends early and what it shows.
#[derive(Default)]
pub(super) struct WaitOptions {
    /// Stop with a failure when an object's rollout failed (see [`failed`]).
    pub fail_fast: bool,
    /// Print `kind/name condition met` lines on success.
    pub print: bool,
    /// No progress on stderr.
    pub quiet: bool,
    /// The Configuration in force: conditions count only for the rollout revisions its
    /// plan asks for when the wait starts. `None`: only the generation is compared.
    pub configuration: Option<String>,
}

/// What the plan asked for when a wait started: the desired spec hash of each deployed
/// Service and Stack (their `status.specHash` once the controller has taken it).
#[derive(Debug, Default)]
struct Asked {
    services: BTreeMap<String, String>,
    stacks: BTreeMap<String, String>,
    /// The Configuration in force and its Environment: Ready when every deployed Stack is.
    in_force: Vec<(Kind, String)>,
}

impl Asked {
    /// The plan of `objects` as the controller of `configuration` sees it.
    fn of(objects: &[DynamicObject], configuration: &str, installation: &str) -> Asked {
        let (_, plan) = planning::plan_of(objects, configuration, installation);
        let mut asked = Asked::default();
        for s in &plan.stacks {
            if let Some(h) = stack_spec_hash(s) {
                asked.stacks.insert(s.name.clone(), h);
            }
            for p in &s.services {
                if let Ok(d) = &p.desired {
                    asked.services.insert(p.name.clone(), d.hash.clone());
                }
            }
        }
        asked.in_force = [
            plan.configuration.map(|c| (Kind::Configuration, c)),
            plan.environment.map(|e| (Kind::Environment, e)),
        ]
        .into_iter()
        .flatten()
        .collect();
        asked
    }

    /// The Stacks a wait on `refs` waits for besides them. An applied Configuration in
    /// force or its Environment (`apply --wait`) is rolled out when every Stack it deploys
    /// is Ready at what was asked; so is the Configuration's own Ready, which says that
    /// (read from the Stacks themselves, it cannot lag behind them).
    fn stacks_behind(&self, refs: &[ObjectRef], want: &Want) -> Vec<ObjectRef> {
        let ready = |kind: Kind| match want {
            Want::Settled => true,
            Want::Condition(t, v) => {
                kind == Kind::Configuration && t == types::READY && v.eq_ignore_ascii_case("True")
            }
            _ => false,
        };
        let in_force = refs.iter().any(|r| {
            ready(r.kind)
                && self
                    .in_force
                    .iter()
                    .any(|(k, n)| *k == r.kind && *n == r.name)
        });
        if !in_force {
            return Vec::new();
        }
        self.stacks
            .keys()
            .map(|s| ObjectRef {
                kind: Kind::Stack,
                name: s.clone(),
            })
            .filter(|s| !refs.contains(s))
            .collect()
    }

    /// Whether the status of `o` is about what was asked (or about something later).
    fn taken(&self, o: &DynamicObject, objects: &[DynamicObject]) -> bool {
        let name = o.metadata.name.as_str();
        let hash_is = |o: &DynamicObject, want: &String| status_str(o, "specHash") == Some(want);
        match o.kind {
            Kind::Service => self.services.get(name).is_none_or(|h| hash_is(o, h)),
            Kind::Stack => self.stacks.get(name).is_none_or(|h| hash_is(o, h)),
            k if self.in_force.iter().any(|(ik, n)| *ik == k && n == name) => {
                self.stacks.iter().all(|(stack, h)| {
                    objects
                        .iter()
                        .find(|s| s.kind == Kind::Stack && &s.metadata.name == stack)
                        .is_none_or(|s| hash_is(s, h))
                })
            }
            _ => true,
        }
    }
}

/// The objects whose progress a wait on `o` shows: itself, and a Stack's Services.
fn watched<'a>(o: &'a DynamicObject, objects: &'a [DynamicObject]) -> Vec<&'a DynamicObject> {
    let mut out = vec![o];
    if o.kind == Kind::Stack {
        let names: Vec<&str> = o
            .spec
            .get("services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for n in names {
            out.extend(
                objects
                    .iter()
                    .find(|s| s.kind == Kind::Service && s.metadata.name == n),
            );
        }
    }
    out
}

/// The failures of a Stack's Services, for the cause of a Stack's failed rollout.
fn causes(o: &DynamicObject, objects: &[DynamicObject]) -> Vec<String> {
    watched(o, objects)
        .into_iter()
        .skip(1)
        .filter_map(|s| {
            let why = failed(s)?;
            let errors = s
                .status
                .as_ref()
                .and_then(|st| st.get("taskErrors"))
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .filter(|e| !why.contains(e));
            Some(match errors {
                Some(e) => format!("{why} ({e})"),
                None => why,
            })
        })
        .collect()
}

/// Waits until every target meets `want`, reading the store on each change it watches
/// (and at least every second), and returns the targets as last read. Progress shows
/// on stderr (see [`Progress`]).
///
/// Errors (exit 1): a named object does not exist (unless waiting for deletion), the
/// timeout passed, or with `fail_fast` the rollout asked for failed. Unreachable etcd exits 2.
pub(super) async fn wait_for(
    store: &Store,
    targets: &Targets,
    want: &Want,
    timeout: Duration,
    options: WaitOptions,
) -> Result<Vec<DynamicObject>, CliError> {
    // A timeout too far off to add is no deadline at all: the wait ends when it is met.
    let deadline = Instant::now().checked_add(timeout);
    let mut progress = Progress::new(options.quiet);
    let mut changes = None;
    let mut asked: Option<Asked> = None;
    loop {
        let list = store.list_all().await?;
        let asked = asked.get_or_insert_with(|| match (&options.configuration, want) {
            (Some(c), Want::Condition(..) | Want::Settled) => {
                Asked::of(&list.items, c, store.prefix())
            }
            _ => Asked::default(),
        });
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
        let behind = asked.stacks_behind(&refs, want);
        let mut pending: Vec<&DynamicObject> = Vec::new();
        let mut lines = Vec::new();
        // A Service also shown under its Stack gets one line.
        let mut shown: Vec<ObjectRef> = Vec::new();
        let mut met = Vec::new();
        for r in refs.iter().chain(&behind) {
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
                    let taken = asked.taken(o, &list.items);
                    if options.fail_fast
                        && taken
                        && let Some(why) = failed(o)
                    {
                        progress.clear();
                        let mut message = format!("rollout failed: {why}");
                        for c in causes(o, &list.items) {
                            message.push_str(&format!("\n  {c}"));
                        }
                        return Err(CliError::failure(message));
                    }
                    if taken && want.met(o) {
                        met.push(o.clone());
                        continue;
                    }
                    pending.push(o);
                    for (i, w) in watched(o, &list.items).into_iter().enumerate() {
                        let r = ObjectRef {
                            kind: w.kind,
                            name: w.metadata.name.clone(),
                        };
                        if shown.contains(&r) {
                            continue;
                        }
                        shown.push(r);
                        let indent = if i == 0 { "" } else { "  " };
                        let mut line = format!("{indent}{}", progress_of(w));
                        if !asked.taken(w, &list.items) {
                            line.push_str(" [waiting for the controller to see the change]");
                        }
                        lines.push(line);
                    }
                }
            }
        }
        if pending.is_empty() {
            progress.clear();
            if options.print && !options.quiet {
                for r in &refs {
                    output::out(format_args!("{r} {}", want.word()))?;
                }
            }
            return Ok(met);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            progress.clear();
            return Err(CliError::failure(format!(
                "timed out after {} waiting: {}",
                humanize(timeout),
                lines.join("; ")
            )));
        }
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(now));
        progress.show(&format!("waiting ({} left):", humanize(left)), &lines);
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
            print: true,
            quiet: args.quiet,
            configuration: Some(args.configuration),
            ..WaitOptions::default()
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

    fn ready_at(mut o: DynamicObject, hash: Option<&str>) -> DynamicObject {
        o.status = Some(serde_json::json!({
            "observedGeneration": o.metadata.generation,
            "specHash": hash,
            "rolloutRevision": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Converged"}],
        }));
        o
    }

    #[test]
    fn a_ready_status_of_an_earlier_revision_does_not_count() {
        let stack = DynamicObject::new(
            Kind::Stack,
            "apps",
            serde_json::json!({"services": ["web"]}),
        );
        let web = DynamicObject::new(
            Kind::Service,
            "web",
            serde_json::json!({"image": "busybox:1.0", "command": ["sleep", "1d"]}),
        );
        let objects = vec![stack.clone(), web.clone()];
        let asked = Asked::of(&objects, "main", "/kargo");
        let want = Want::Condition(types::READY.into(), "True".into());
        // Ready, but about a spec the plan no longer asks for (before a restart, an undo…).
        let old = ready_at(web.clone(), Some("0123456789abcdef"));
        assert!(want.met(&old) && !asked.taken(&old, &objects));
        let stack_old = ready_at(stack.clone(), Some("0123456789abcdef"));
        assert!(!asked.taken(&stack_old, &objects));
        // Ready at the spec asked for: counts.
        let now = ready_at(web, asked.services.get("web").map(String::as_str));
        assert!(asked.taken(&now, &objects));
        let stack_now = ready_at(stack, asked.stacks.get("apps").map(String::as_str));
        assert!(asked.taken(&stack_now, &objects));
    }
}
