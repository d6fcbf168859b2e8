//! `kargo describe`: one object for a person — its spec in short, status conditions,
//! the Swarm tasks (from Docker) and the recent events.

use serde_json::Value;

use crate::api::annotations::LAST_APPLIED_ANNOTATION;
use crate::api::{DynamicObject, Kind};
use crate::store::Store;
use crate::swarm::SwarmClient;

use super::output::{self, age, age_of, redacted, render_table};
use super::{CliError, ExitStatus, GlobalArgs, swarmref, target};

const EXAMPLES: &str = "Examples:
  kargo describe service web
  kargo describe stack/apps
  kargo describe environment production";

/// Show one or more objects in detail: spec in short, conditions, Swarm tasks and events.
///
/// Tasks come from Docker (--docker-host); when Docker cannot be reached the rest is
/// still shown, with a note. Events are the controller's, newest last (kept one hour).
/// Exit codes: 0 shown, 1 an object was not found, 2 usage or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A kind and names, or KIND/NAME...
    #[arg(required = true, value_name = "KIND NAME... | KIND/NAME...", add = super::complete::targets())]
    targets: Vec<String>,
    /// Leave the events out.
    #[arg(long)]
    no_events: bool,
    /// The Configuration in force (its Environment's registries check a pinned tag).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
}

const KEY_WIDTH: usize = 16;

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Lines of a description being built.
#[derive(Default)]
struct Doc {
    text: String,
}

impl Doc {
    fn field(&mut self, indent: usize, key: &str, value: impl AsRef<str>) {
        let pad = " ".repeat(indent);
        let label = format!("{key}:");
        let value = value.as_ref();
        if value.is_empty() {
            self.text.push_str(&format!("{pad}{label}\n"));
        } else {
            let w = KEY_WIDTH.saturating_sub(indent).max(label.len() + 1);
            self.text.push_str(&format!("{pad}{label:<w$}{value}\n"));
        }
    }

    fn heading(&mut self, title: &str) {
        self.text.push_str(&format!("{title}:\n"));
    }

    fn block(&mut self, indent: usize, text: &str) {
        let pad = " ".repeat(indent);
        for line in text.lines() {
            self.text.push_str(&format!("{pad}{line}\n"));
        }
    }
}

fn str_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn list_of(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|x| str_of(Some(x)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "<none>".into(),
    }
}

/// A command as a shell would take it: words that need it single-quoted.
fn shell_words(v: Option<&Value>) -> String {
    let words: Vec<String> = v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|w| {
            let w = str_of(Some(w));
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                w
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect();
    if words.is_empty() {
        "<none>".into()
    } else {
        words.join(" ")
    }
}

fn map_of(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", str_of(Some(v))))
                .collect()
        })
        .unwrap_or_default()
}

fn ports(v: Option<&Value>) -> String {
    let Some(a) = v.and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        return "<none>".into();
    };
    a.iter()
        .map(|p| {
            let target = str_of(p.get("target"));
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
            let mode = p.get("mode").and_then(Value::as_str).unwrap_or("ingress");
            match p.get("published").filter(|x| !x.is_null()) {
                Some(pub_) => format!("{}->{target}/{proto} ({mode})", str_of(Some(pub_))),
                None => format!("{target}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn volumes(v: Option<&Value>) -> String {
    let Some(a) = v.and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        return "<none>".into();
    };
    a.iter()
        .map(|m| {
            let ro = if m.get("readOnly").and_then(Value::as_bool) == Some(true) {
                " (ro)"
            } else {
                ""
            };
            match m.get("source").and_then(Value::as_str) {
                Some(src) => format!(
                    "{}:{src}->{}{ro}",
                    str_of(m.get("type")),
                    str_of(m.get("target"))
                ),
                None => format!("{}:{}{ro}", str_of(m.get("type")), str_of(m.get("target"))),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_meta(doc: &mut Doc, o: &DynamicObject) {
    let m = &o.metadata;
    doc.field(0, "Name", &m.name);
    doc.field(0, "Kind", o.kind.as_str());
    let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    doc.field(
        0,
        "Labels",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(", ")
        },
    );
    let annotations: Vec<String> = m
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED_ANNOTATION)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    doc.field(
        0,
        "Annotations",
        if annotations.is_empty() {
            "<none>".into()
        } else {
            annotations.join(", ")
        },
    );
    if let Some(t) = m.creation_timestamp {
        doc.field(0, "Created", format!("{} ({} ago)", rfc3339(t), age(t)));
    }
    let observed = o
        .status
        .as_ref()
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64);
    doc.field(
        0,
        "Generation",
        format!(
            "{} (observed: {})",
            m.generation.unwrap_or(0),
            observed
                .map(|g| g.to_string())
                .unwrap_or_else(|| "not yet".into())
        ),
    );
    if !m.finalizers.is_empty() {
        doc.field(0, "Finalizers", m.finalizers.join(", "));
    }
    if let Some(t) = m.deletion_timestamp {
        doc.field(
            0,
            "Deleting",
            format!("since {} ({} ago)", rfc3339(t), age(t)),
        );
    }
}

fn describe_spec(doc: &mut Doc, o: &DynamicObject) {
    let s = &o.spec;
    doc.heading("Spec");
    match o.kind {
        Kind::Service => {
            doc.field(2, "Image", str_of(s.get("image")));
            if let Some(c) = s.get("command") {
                doc.field(2, "Command", shell_words(Some(c)));
            }
            if let Some(a) = s.get("args") {
                doc.field(2, "Args", shell_words(Some(a)));
            }
            let mode = s
                .pointer("/deploy/mode")
                .and_then(Value::as_str)
                .unwrap_or("replicated");
            doc.field(2, "Mode", mode);
            if !mode.starts_with("global") {
                doc.field(2, "Replicas", str_of(s.pointer("/deploy/replicas")));
            }
            doc.field(2, "Ports", ports(s.get("ports")));
            doc.field(2, "Networks", list_of(s.get("networks")));
            doc.field(2, "Volumes", volumes(s.get("volumes")));
            let env = map_of(s.get("env"));
            doc.field(
                2,
                "Env",
                if env.is_empty() {
                    "<none>".into()
                } else {
                    env.join(", ")
                },
            );
            for key in ["configs", "secrets"] {
                if let Some(a) = s
                    .get(key)
                    .and_then(Value::as_array)
                    .filter(|a| !a.is_empty())
                {
                    let shown: Vec<String> = a
                        .iter()
                        .map(|f| match f.get("target") {
                            Some(t) => format!("{}->{}", str_of(f.get("file")), str_of(Some(t))),
                            None => str_of(f.get("file")),
                        })
                        .collect();
                    doc.field(
                        2,
                        if key == "configs" {
                            "Configs"
                        } else {
                            "Secrets"
                        },
                        shown.join(", "),
                    );
                }
            }
            if let Some(h) = s.get("healthcheck") {
                doc.field(
                    2,
                    "Healthcheck",
                    format!(
                        "{} every {}",
                        list_of(h.get("test")),
                        h.get("interval").and_then(Value::as_str).unwrap_or("30s")
                    ),
                );
            }
            if let Some(c) = s.pointer("/deploy/placement/constraints") {
                doc.field(2, "Constraints", list_of(Some(c)));
            }
            if let Some(d) = s.get("dependsOn") {
                doc.field(2, "Depends on", list_of(Some(d)));
            }
        }
        Kind::Stack => {
            doc.field(2, "Services", list_of(s.get("services")));
            doc.field(2, "Depends on", list_of(s.get("dependsOn")));
            doc.field(
                2,
                "Suspend",
                if s.get("suspend").and_then(Value::as_bool) == Some(true) {
                    "true"
                } else {
                    "false"
                },
            );
            doc.field(
                2,
                "Rollback",
                s.get("rollback")
                    .and_then(Value::as_str)
                    .unwrap_or("manual"),
            );
            if let Some(d) = s.get("progressDeadlineSeconds") {
                doc.field(2, "Deadline", format!("{}s", str_of(Some(d))));
            }
        }
        Kind::Environment => {
            doc.field(2, "Stacks", list_of(s.get("stacks")));
            doc.field(
                2,
                "Rollout",
                s.get("rollout")
                    .and_then(Value::as_str)
                    .unwrap_or("ordered"),
            );
            let vars = map_of(s.get("variables"));
            doc.field(
                2,
                "Variables",
                if vars.is_empty() {
                    "<none>".to_string()
                } else {
                    String::new()
                },
            );
            for v in vars {
                doc.block(4, &v);
            }
            if let Some(svcs) = s
                .get("services")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                doc.field(2, "Services", "");
                for (name, settings) in svcs {
                    doc.block(4, &format!("{name}: {}", map_of(Some(settings)).join(", ")));
                }
            }
            if let Some(n) = s.get("networks") {
                doc.field(2, "Networks", map_of(Some(n)).join(", "));
            }
            if let Some(nodes) = s
                .get("nodes")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                doc.field(
                    2,
                    "Nodes",
                    nodes.keys().cloned().collect::<Vec<_>>().join(", "),
                );
            }
        }
        Kind::Configuration => {
            doc.field(2, "Environment", str_of(s.get("environment")));
            doc.field(
                2,
                "Defaults",
                s.get("defaults")
                    .and_then(Value::as_str)
                    .unwrap_or("builtin"),
            );
            match s
                .get("files")
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                None => doc.field(2, "Files", "<none>"),
                Some(files) => {
                    doc.field(2, "Files", "");
                    for (name, f) in files {
                        let mut flags = Vec::new();
                        if f.get("template").and_then(Value::as_bool) == Some(true) {
                            flags.push("template");
                        }
                        if f.get("sensitive").and_then(Value::as_bool) == Some(true) {
                            flags.push("sensitive");
                        }
                        let size = f
                            .get("content")
                            .and_then(Value::as_str)
                            .map(str::len)
                            .unwrap_or(0);
                        let flags = if flags.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", flags.join(", "))
                        };
                        doc.block(4, &format!("{name}: {size} bytes{flags}"));
                    }
                }
            }
        }
    }
}

/// `tag`: for a pinned Service, what the registry says of its tag now.
fn describe_status(doc: &mut Doc, o: &DynamicObject, tag: Option<&str>) {
    let Some(st) = o.status.as_ref() else {
        doc.field(0, "Status", "<none: the controller has not seen it yet>");
        return;
    };
    doc.heading("Status");
    let n = |f: &str| st.get(f).and_then(Value::as_u64).unwrap_or(0);
    match o.kind {
        Kind::Service => {
            doc.field(2, "Stack", str_of(st.get("stack")));
            doc.field(2, "Swarm name", str_of(st.get("swarmName")));
            doc.field(2, "Service ID", str_of(st.get("serviceId")));
            doc.field(2, "Image", str_of(st.get("image")));
            if let Some(digest) = st.get("imageDigest").and_then(Value::as_str) {
                doc.field(2, "Image digest", digest);
            }
            if let Some(tag) = tag {
                doc.field(2, "Image tag", tag);
            }
            doc.field(
                2,
                "Tasks",
                format!("{}/{} running", n("runningTasks"), n("desiredTasks")),
            );
            doc.field(2, "Update", str_of(st.get("updateState")));
            if let Some(errors) = st
                .get("taskErrors")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
            {
                doc.field(2, "Task errors", "");
                for e in errors.iter().take(5) {
                    doc.block(4, &str_of(Some(e)));
                }
            }
        }
        Kind::Stack => {
            doc.field(2, "Swarm stack", str_of(st.get("swarmStack")));
            doc.field(
                2,
                "Services",
                format!("{}/{} ready", n("servicesReady"), n("servicesTotal")),
            );
            doc.field(2, "Last Ready", str_of(st.get("lastReadyRevision")));
        }
        Kind::Environment => {
            doc.field(
                2,
                "Resolved",
                format!("{} variables", n("variablesResolved")),
            );
            if let Some(u) = st.get("unresolved") {
                doc.field(2, "Unresolved", list_of(Some(u)));
            }
        }
        Kind::Configuration => {
            doc.field(2, "Digest", str_of(st.get("digest")));
            doc.field(2, "Stacks", list_of(st.get("stacks")));
            doc.field(2, "Services", list_of(st.get("services")));
        }
    }
    let conditions = st
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if conditions.is_empty() {
        doc.field(0, "Conditions", "<none>");
    } else {
        doc.heading("Conditions");
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                let get = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
                vec![
                    get("type"),
                    get("status"),
                    get("reason"),
                    c.get("lastTransitionTime")
                        .and_then(Value::as_str)
                        .map(age_of)
                        .unwrap_or_default(),
                    get("message"),
                ]
            })
            .collect();
        doc.block(
            2,
            &render_table(&["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], &rows, true),
        );
    }
}

/// The stack's services with their readiness, from their objects.
async fn describe_stack_services(
    doc: &mut Doc,
    store: &Store,
    o: &DynamicObject,
) -> Result<(), CliError> {
    let names: Vec<String> = o
        .spec
        .get("services")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for n in &names {
        let svc = store.get(Kind::Service, n).await?;
        let row = match svc {
            None => vec![
                n.clone(),
                "<no object: default catalog>".into(),
                String::new(),
                String::new(),
            ],
            Some(s) => {
                let st = s.status.clone().unwrap_or(Value::Null);
                let ready = output::ready_condition(&s)
                    .and_then(|c| c.get("status"))
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_string();
                let n_of = |f: &str| st.get(f).and_then(Value::as_u64).unwrap_or(0);
                vec![
                    n.clone(),
                    ready,
                    format!("{}/{}", n_of("runningTasks"), n_of("desiredTasks")),
                    str_of(st.get("image").or_else(|| s.spec.get("image"))),
                ]
            }
        };
        rows.push(row);
    }
    doc.heading("Services");
    doc.block(
        2,
        &render_table(&["NAME", "READY", "TASKS", "IMAGE"], &rows, true),
    );
    Ok(())
}

async fn describe_tasks(
    doc: &mut Doc,
    swarm: &Result<SwarmClient, CliError>,
    installation: &str,
    o: &DynamicObject,
) {
    let swarm = match swarm {
        Ok(s) => s,
        Err(e) => {
            doc.field(0, "Tasks", format!("<not shown: {}>", e.message));
            return;
        }
    };
    let result = async {
        let services = swarmref::services_of(swarm, installation, o.kind, &o.metadata.name).await?;
        if services.is_empty() {
            return Ok(None);
        }
        swarmref::tasks_table(swarm, &services, true)
            .await
            .map(Some)
    }
    .await;
    match result {
        Ok(None) => doc.field(0, "Tasks", "<none: not deployed in Swarm>"),
        Ok(Some(table)) => {
            doc.heading("Tasks");
            doc.block(2, &table);
        }
        Err(e) => doc.field(0, "Tasks", format!("<not shown: {}>", e.message)),
    }
}

async fn describe_events(doc: &mut Doc, store: &Store, o: &DynamicObject) -> Result<(), CliError> {
    let evs = store.events(o.kind, &o.metadata.name).await?;
    if evs.is_empty() {
        doc.field(0, "Events", "<none>");
        return Ok(());
    }
    // The newest twenty, oldest first as kubectl shows them.
    let shown = &evs[evs.len().saturating_sub(20)..];
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|e| {
            vec![
                e.type_.clone(),
                e.reason.clone(),
                age_of(&e.time),
                e.count.to_string(),
                e.message.clone(),
            ]
        })
        .collect();
    doc.heading("Events");
    doc.block(
        2,
        &render_table(&["TYPE", "REASON", "AGE", "COUNT", "MESSAGE"], &rows, true),
    );
    Ok(())
}

/// Whether the registry's tag of a pinned Service still points to the digest it runs
/// (asked now, with the credentials of the Environment in force that this process can read).
async fn image_tag(
    swarm: &SwarmClient,
    store: &Store,
    configuration: &str,
    o: &DynamicObject,
) -> Result<Option<String>, CliError> {
    let st = o.status.as_ref();
    let field = |f: &str| st.and_then(|s| s.get(f)).and_then(Value::as_str);
    let (Some(image), Some(digest)) = (field("image"), field("imageDigest")) else {
        return Ok(None);
    };
    if image.contains('@') {
        // Pinned by the spec itself: no tag to follow.
        return Ok(None);
    }
    let objects = store.list_all().await?.items;
    let (snapshot, plan) = super::planning::plan_of(&objects, configuration, store.prefix());
    let env = plan
        .environment
        .as_ref()
        .and_then(|e| snapshot.environments.get(e))
        .map(|e| &e.spec);
    let live = crate::registry::resolve::pinned(image, digest);
    let text = match super::diff::check_tag(swarm, env, &live).await {
        Some(super::diff::TagCheck::Same) | None => "unchanged in the registry".to_string(),
        Some(super::diff::TagCheck::Moved(now, _)) => format!(
            "the registry's tag now points to {now} ({})",
            super::diff::taken_when(env)
        ),
        Some(super::diff::TagCheck::Unchecked(why)) => format!("could not be checked: {why}"),
    };
    Ok(Some(text))
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (kind, refs) = target::refs(&args.targets)?;
    if refs.is_empty() {
        return Err(CliError::usage(format!(
            "name the {} to describe",
            kind.map(|k| k.plural()).unwrap_or("objects")
        )));
    }
    let store = g.store().await?;
    let needs_docker = refs
        .iter()
        .any(|r| matches!(r.kind, Kind::Service | Kind::Stack));
    let swarm = if needs_docker {
        g.swarm().await
    } else {
        Err(CliError::usage("not needed"))
    };
    let mut status = ExitStatus::Success;
    let mut first = true;
    for r in &refs {
        let Some(o) = store.get(r.kind, &r.name).await? else {
            output::note(format_args!("error: {} {:?} not found", r.kind, r.name));
            status = ExitStatus::Failure;
            continue;
        };
        let o = redacted(&o);
        let mut doc = Doc::default();
        describe_meta(&mut doc, &o);
        describe_spec(&mut doc, &o);
        let tag = match &swarm {
            Ok(swarm) if o.kind == Kind::Service => {
                image_tag(swarm, &store, &args.configuration, &o).await?
            }
            _ => None,
        };
        describe_status(&mut doc, &o, tag.as_deref());
        if o.kind == Kind::Stack {
            describe_stack_services(&mut doc, &store, &o).await?;
        }
        if matches!(o.kind, Kind::Service | Kind::Stack) {
            describe_tasks(&mut doc, &swarm, &g.prefix, &o).await;
        }
        if !args.no_events {
            describe_events(&mut doc, &store, &o).await?;
        }
        if !first {
            output::out("")?;
        }
        first = false;
        output::out_text(&doc.text)?;
    }
    Ok(status)
}
