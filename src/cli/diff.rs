//! `kargo diff`: what `kargo apply -f` would change, in the store and in Swarm.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use crate::api::annotations::LAST_APPLIED_ANNOTATION;
use crate::api::{API_VERSION, DynamicObject, EnvironmentSpec, ResolveImage};
use crate::registry::credentials_for;
use crate::registry::resolve::{Resolution, digest_of, without_digest};
use crate::swarm::SwarmClient;
use crate::swarm::names::INSTALLATION_LABEL;

use super::output::{self, redacted, to_yaml, unified_diff};
use super::{CliError, ExitStatus, GlobalArgs, manifests, planning};

const EXAMPLES: &str = "Examples:
  kargo diff -f manifests/ -R
  kargo diff -f web.yaml --docker-host tcp://manager:2375
  kargo diff -f manifests/ > /dev/null; echo $?   # 0 same, 1 differs (store or live Swarm), 2 error";

/// Show what `kargo apply -f` would change: a unified diff of each stored object against
/// what apply would store, then of each live Swarm service against the spec the controller
/// would give it: the change the files bring, or live drift (a `docker service update` by
/// hand, a spec Swarm rolled back) in the stacks the files concern, even when the stored
/// objects already match the files.
///
/// The Swarm part compares with the live services and needs Docker; when Docker cannot be
/// reached, it is left out with a note on stderr. A service not deployed yet is no drift.
/// Nothing is written.
///
/// Exit codes: 0 nothing differs (the stored objects match the files and the live
/// services match the stored objects); 1 something differs, in the store or in Swarm;
/// 2 an error (invalid manifests, unreachable etcd, usage).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Files, folders or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// The Configuration in force (decides what the Swarm part deploys).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
}

/// What a diff shows of an object: what apply manages (no status, no bookkeeping).
fn shown(o: &DynamicObject) -> String {
    let o = redacted(o);
    let mut meta = Map::new();
    meta.insert("name".into(), json!(o.metadata.name));
    if !o.metadata.labels.is_empty() {
        meta.insert("labels".into(), json!(o.metadata.labels));
    }
    let annotations: Map<String, Value> = o
        .metadata
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != LAST_APPLIED_ANNOTATION)
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    to_yaml(&json!({
        "apiVersion": API_VERSION,
        "kind": o.kind,
        "metadata": meta,
        "spec": o.spec,
    }))
}

/// The engine drops empty values and `false` flags: leave them out of both sides.
fn prune_empty(v: &Value) -> Option<Value> {
    match v {
        Value::Null | Value::Bool(false) => None,
        Value::Array(a) if a.is_empty() => None,
        Value::Object(m) => {
            let kept: Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| prune_empty(v).map(|v| (k.clone(), v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|x| prune_empty(x).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The live spec cut down to the fields the desired one sets (daemon defaults left out).
fn project(live: &Value, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => Value::Object(
            d.keys()
                .filter_map(|k| l.get(k).map(|lv| (k.clone(), project(lv, &d[k]))))
                .collect(),
        ),
        (Value::Array(l), Value::Array(d)) => Value::Array(
            l.iter()
                .enumerate()
                .map(|(i, lv)| match d.get(i) {
                    Some(dv) => project(lv, dv),
                    None => lv.clone(),
                })
                .collect(),
        ),
        (l, _) => l.clone(),
    }
}

/// Network names in a rendered spec replaced by their IDs, as the engine stores them.
async fn with_network_ids(swarm: &SwarmClient, spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(nets) = spec
        .pointer_mut("/TaskTemplate/Networks")
        .and_then(Value::as_array_mut)
    {
        for n in nets {
            let name = n.get("Target").and_then(Value::as_str).map(str::to_string);
            if let Some(name) = name
                && let Ok(Some(id)) = swarm.network_id(&name).await
                && let Some(obj) = n.as_object_mut()
            {
                obj.insert("Target".into(), json!(id));
            }
        }
    }
    spec
}

/// What the registry says now of the tag a live service was pinned from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TagCheck {
    /// The tag still points to the running digest.
    Same,
    /// The tag points elsewhere now: (the digest it points to, the running one).
    Moved(String, String),
    /// Could not be checked, and why.
    Unchecked(String),
}

/// Asks the registry (through the engine, with the Environment's credentials as this
/// process can read them) where the tag of `live_image` (`name:tag@sha256:…`, as the
/// controller pinned it) points now. `None` when the live image is not pinned.
pub(super) async fn check_tag(
    swarm: &SwarmClient,
    env: Option<&EnvironmentSpec>,
    live_image: &str,
) -> Option<TagCheck> {
    let running = digest_of(live_image)?;
    let tag = without_digest(live_image);
    let default_env = EnvironmentSpec::default();
    let credentials = match credentials_for(
        env.unwrap_or(&default_env),
        tag,
        &crate::registry::SourceRules::from_env(),
    ) {
        Ok(c) => c,
        Err(e) => return Some(TagCheck::Unchecked(e.to_string())),
    };
    Some(match swarm.resolve_image(tag, credentials.as_ref()).await {
        Resolution::Digest(now) if now == running => TagCheck::Same,
        Resolution::Digest(now) => TagCheck::Moved(now, running.to_string()),
        Resolution::CredentialsRefused(why) => TagCheck::Unchecked(format!(
            "registry {} refused the credentials: {why}",
            crate::registry::registry_of(tag)
        )),
        Resolution::Unresolved(why) => TagCheck::Unchecked(why),
    })
}

/// When a moved tag is taken, under the Environment's `resolveImage`.
pub(super) fn taken_when(env: Option<&EnvironmentSpec>) -> &'static str {
    match env.and_then(|e| e.resolve_image).unwrap_or_default() {
        ResolveImage::Changed => "taken when the image reference changes (resolveImage: changed)",
        ResolveImage::Always | ResolveImage::Never => {
            "taken on the next change or kargo rollout restart"
        }
    }
}

/// The live spec as shown beside the desired one: a pinned image whose tag is the desired
/// reference is shown as that reference (the digest is no difference; the tag check says
/// whether the tag moved).
fn shown_unpinned(mut live: Value, desired: &Value) -> Value {
    const IMAGE: &str = "/TaskTemplate/ContainerSpec/Image";
    let wanted = desired.pointer(IMAGE).and_then(Value::as_str);
    if let (Some(wanted), Some(slot)) = (wanted, live.pointer_mut(IMAGE))
        && slot.as_str().map(without_digest) == Some(wanted)
    {
        *slot = json!(wanted);
    }
    live
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    // 1 means "differs": every failure of diff itself is 2 or more.
    diff(g, args).await.map_err(|mut e| {
        if e.status == ExitStatus::Failure {
            e.status = ExitStatus::Usage;
        }
        e
    })
}

async fn diff(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let objects = manifests::load(&args.files, args.recursive)?;
    let store = g.store().await?;
    let mut after = Vec::new();
    let mut differs = false;
    for obj in &objects {
        let preview = store.prepare_apply(obj).await?.preview()?;
        let old = preview.previous.as_ref().map(shown).unwrap_or_default();
        let new = shown(&preview.object);
        let label = obj.reference();
        if let Some(d) = unified_diff(
            &old,
            &new,
            &format!("live/{label}"),
            &format!("merged/{label}"),
        ) {
            differs = true;
            output::out_text(&d)?;
        }
        after.push(preview.object);
    }
    let status = |differs: bool| {
        if differs {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        }
    };

    let stored = store.list_all().await?.items;
    let (_, before_plan) = planning::plan_of(&stored, &args.configuration, store.prefix());
    let merged = planning::overlay(&stored, &after);
    let (after_snapshot, after_plan) =
        planning::plan_of(&merged, &args.configuration, store.prefix());
    let env = after_plan
        .environment
        .as_ref()
        .and_then(|e| after_snapshot.environments.get(e))
        .map(|e| &e.spec);
    let before = planning::rendered(&before_plan);
    let rendered = planning::rendered(&after_plan);
    let changed: BTreeSet<&String> = before
        .keys()
        .chain(rendered.keys())
        .filter(|k| before.get(*k) != rendered.get(*k))
        .collect();
    // The Swarm services of the stacks the files concern, checked for live drift too.
    let touched = planning::touched_stacks(&after_plan, &after);
    let watched: BTreeSet<&String> = after_plan
        .stacks
        .iter()
        .filter(|s| touched.contains(s.name.as_str()))
        .flat_map(|s| {
            s.services
                .iter()
                .map(move |p| crate::swarm::names::swarm_service(&s.name, &p.name))
        })
        .filter_map(|name| rendered.get_key_value(&name).map(|(k, _)| k))
        .chain(changed.iter().copied())
        .collect();
    if watched.is_empty() {
        return Ok(status(differs));
    }
    let swarm = match g.swarm().await {
        Ok(s) => s,
        Err(e) => {
            output::note(format_args!(
                "note: the Swarm part is not shown ({} Swarm service(s) would change; live drift not checked): {}",
                changed.len(),
                e.message
            ));
            return Ok(status(differs || !changed.is_empty()));
        }
    };
    for name in watched {
        let will_change = changed.contains(name);
        match rendered.get(name) {
            None => {
                differs = true;
                output::out(format_args!("swarm service {name} would be removed"))?;
            }
            Some(Err(why)) if will_change => {
                differs = true;
                output::out(format_args!(
                    "swarm service {name} could not be deployed: {why}"
                ))?;
            }
            Some(Err(_)) => {}
            Some(Ok(spec)) => {
                let desired = with_network_ids(&swarm, &crate::swarm::comparable(spec)).await;
                let mut live = swarm.inspect_service(name).await?;
                if let Some(l) = &live
                    && l.labels.get(INSTALLATION_LABEL).map(String::as_str) != Some(store.prefix())
                {
                    output::note(format_args!(
                        "note: Swarm service {name} exists but belongs to another installation ({}); shown as new",
                        l.labels
                            .get(INSTALLATION_LABEL)
                            .map(String::as_str)
                            .unwrap_or("none")
                    ));
                    live = None;
                }
                // What runs already is what the controller would make of it: nothing to show.
                // A service not deployed yet is no drift, only a change the files bring.
                let drift = match &live {
                    Some(l) => !crate::swarm::covers(&l.spec, &desired),
                    None => will_change,
                };
                // A pinned tag that moved in the registry since: shown, never taken silently.
                let live_image = live
                    .as_ref()
                    .and_then(|l| l.spec.pointer("/TaskTemplate/ContainerSpec/Image"))
                    .and_then(Value::as_str);
                let desired_image = desired
                    .pointer("/TaskTemplate/ContainerSpec/Image")
                    .and_then(Value::as_str);
                if let Some(live_image) = live_image
                    && desired_image == Some(without_digest(live_image))
                {
                    match check_tag(&swarm, env, live_image).await {
                        Some(TagCheck::Moved(now, running)) => {
                            differs = true;
                            output::out(format_args!(
                                "swarm service {name}: image {}: the registry's tag now points to {now}; running {running} ({})",
                                without_digest(live_image),
                                taken_when(env)
                            ))?;
                        }
                        Some(TagCheck::Unchecked(why)) => output::note(format_args!(
                            "note: swarm service {name}: whether the tag of image {} moved could not be checked: {why}",
                            without_digest(live_image)
                        )),
                        Some(TagCheck::Same) | None => {}
                    }
                }
                if !drift {
                    continue;
                }
                differs = true;
                let desired = prune_empty(&desired).unwrap_or(Value::Null);
                let old = match &live {
                    Some(l) => to_yaml(
                        &prune_empty(&shown_unpinned(project(&l.spec, &desired), &desired))
                            .unwrap_or(Value::Null),
                    ),
                    None => String::new(),
                };
                let new = to_yaml(&desired);
                let label = if will_change { "after apply" } else { "stored" };
                match unified_diff(
                    &old,
                    &new,
                    &format!("swarm/{name} (live)"),
                    &format!("swarm/{name} ({label})"),
                ) {
                    Some(d) => output::out_text(&d)?,
                    None => output::out(format_args!(
                        "swarm service {name} differs from the {label} spec in fields the engine does not show"
                    ))?,
                }
            }
        }
    }
    Ok(status(differs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_specs_are_cut_to_the_desired_fields() {
        let live = json!({"Name": "a", "Labels": {"x": "1"}, "Mode": {"Replicated": {"Replicas": 1}},
                          "TaskTemplate": {"Runtime": "container"}});
        let desired = json!({"Name": "a", "Mode": {"Replicated": {"Replicas": 3}}});
        assert_eq!(
            project(&live, &desired),
            json!({"Name": "a", "Mode": {"Replicated": {"Replicas": 1}}})
        );
    }

    #[test]
    fn a_pinned_live_image_is_shown_as_its_tag() {
        let desired = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:1"}}});
        let live = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:1@sha256:ab"}}});
        assert_eq!(shown_unpinned(live, &desired), desired);
        let other = json!({"TaskTemplate": {"ContainerSpec": {"Image": "r:5000/a:0@sha256:ab"}}});
        assert_eq!(shown_unpinned(other.clone(), &desired), other);
    }

    #[test]
    fn empty_values_are_pruned() {
        let v = json!({"a": [], "b": false, "c": {"d": null}, "e": [{"ReadOnly": false, "T": 1}]});
        assert_eq!(prune_empty(&v), Some(json!({"e": [{"T": 1}]})));
    }
}
