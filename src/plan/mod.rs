//! What is deployed (docs/design.md, "The model"): the Configuration in force, its Environment's
//! stacks, each Stack's services merged and rendered. Pure: the CLI's `render` and the
//! controller call this same function, so they cannot disagree.

use crate::api::annotations::RESTARTED_AT_ANNOTATION;
use crate::api::conditions::reasons;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::api::{
    Configuration, DefaultsMode, DynamicObject, Environment, Kind, Rollout, Service, ServiceSpec,
    Stack,
};
use crate::manifest::interpolate::InterpolationError;
use crate::manifest::load::strip_nulls;
use crate::manifest::merge::{merge_layers, settings_patch};
use crate::secrets::Keyring;
use crate::swarm::names::{config_name, content_name};
use crate::swarm::{DesiredService, RenderContext, render_service, with_force_update};

pub mod intent;
mod sensitive;

pub use sensitive::sensitive_misuse;
pub(crate) use sensitive::{MISUSE, mentioned_variables, restricted_strings};
use sensitive::{catalog_file, plan_file, sensitive_variables};

/// Swarm's ForceUpdate counter for a restart requested at `t`: its milliseconds, so two
/// restarts within a second differ; a time written to the whole second (as earlier builds
/// wrote it) keeps its seconds, so upgrading redeploys nothing.
fn force_update_counter(t: &chrono::DateTime<chrono::FixedOffset>) -> u64 {
    let counter = if t.timestamp_subsec_millis() == 0 {
        t.timestamp()
    } else {
        t.timestamp_millis()
    };
    u64::try_from(counter).unwrap_or(0)
}

/// The objects of one installation as read at one revision, typed.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Configurations by name.
    pub configurations: BTreeMap<String, Configuration>,
    /// Environments by name.
    pub environments: BTreeMap<String, Environment>,
    /// Stacks by name.
    pub stacks: BTreeMap<String, Stack>,
    /// Services by name (explicit nulls of overlays dropped).
    pub services: BTreeMap<String, Service>,
    /// Services' specs exactly as stored (with the nulls that delete default fields).
    pub service_specs: BTreeMap<String, Value>,
    /// Objects the controller cannot use — undecodable, or failing their kind's schema —
    /// with why. They are doubt: what they would change in Swarm is left as it is.
    pub invalid: Vec<(Kind, String, String)>,
    /// The installation has had its Configuration in force before (recorded in etcd), so
    /// a missing one is an accident to report, not "deploy every Stack".
    pub configured_before: bool,
}

impl Snapshot {
    /// Types a store listing; values that did not decode are set aside in `invalid`.
    pub fn from_list(list: &crate::store::ObjectList) -> Self {
        let mut s = Self::from_objects(&list.items);
        for bad in &list.invalid {
            if let Some((kind, name)) = &bad.object {
                s.invalid.push((*kind, name.clone(), bad.message.clone()));
            }
        }
        s
    }

    /// True when the object of this kind and name is stored but unusable.
    pub fn is_invalid(&self, kind: Kind, name: &str) -> bool {
        self.invalid.iter().any(|(k, n, _)| *k == kind && n == name)
    }

    /// Why the object of this kind and name is unusable, if it is.
    pub fn invalid_reason(&self, kind: Kind, name: &str) -> Option<&str> {
        self.invalid
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, why)| why.as_str())
    }

    /// Types a list of stored objects; one that does not fit its kind — its schema (the
    /// CLI's check, re-done because anything can write to etcd) or its Rust type — is set
    /// aside in `invalid`.
    pub fn from_objects(objects: &[DynamicObject]) -> Self {
        let mut s = Snapshot::default();
        for o in objects {
            s.insert(o);
        }
        s
    }

    /// Forgets the object of this kind and name (deleted, or replaced by a bad value).
    pub fn remove(&mut self, kind: Kind, name: &str) {
        match kind {
            Kind::Configuration => {
                self.configurations.remove(name);
            }
            Kind::Environment => {
                self.environments.remove(name);
            }
            Kind::Stack => {
                self.stacks.remove(name);
            }
            Kind::Service => {
                self.services.remove(name);
                self.service_specs.remove(name);
            }
        }
        self.invalid.retain(|(k, n, _)| !(*k == kind && n == name));
    }

    /// Records a value that did not decode as the object its key names.
    pub fn insert_invalid(&mut self, kind: Kind, name: &str, why: &str) {
        self.remove(kind, name);
        self.invalid.push((kind, name.to_string(), why.to_string()));
    }

    /// Adds or replaces one object, typed and checked (the watch cache calls this per change).
    pub fn insert(&mut self, o: &DynamicObject) {
        let name = o.metadata.name.clone();
        self.remove(o.kind, &name);
        let violations = crate::manifest::validate::validate_spec(
            o.kind,
            crate::api::schema::Mode::Stored,
            &o.spec,
        );
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().take(3).map(ToString::to_string).collect();
            self.invalid.push((o.kind, name, list.join("; ")));
            return;
        }
        let r = match o.kind {
            Kind::Configuration => o.typed().map(|t| {
                self.configurations.insert(name.clone(), t);
            }),
            Kind::Environment => o.typed().map(|t| {
                self.environments.insert(name.clone(), t);
            }),
            Kind::Stack => o.typed().map(|t| {
                self.stacks.insert(name.clone(), t);
            }),
            Kind::Service => {
                // Overlays may hold nulls, which the typed spec cannot: keep the raw spec.
                let mut stripped = o.clone();
                stripped.spec = strip_nulls(&o.spec);
                stripped.typed().map(|t| {
                    self.services.insert(name.clone(), t);
                    self.service_specs.insert(name.clone(), o.spec.clone());
                })
            }
        };
        if let Err(e) = r {
            self.invalid.push((o.kind, name, e.to_string()));
        }
    }
}

/// Everything the controller deploys, in order.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The Configuration in force, if it exists.
    pub configuration: Option<String>,
    /// Its Environment, if any.
    pub environment: Option<String>,
    /// How stacks roll out.
    pub rollout: Option<Rollout>,
    /// Shared networks to create first (real names).
    pub networks: Vec<String>,
    /// Deployed stacks, in rollout order.
    pub stacks: Vec<PlannedStack>,
    /// Problems of the Configuration or Environment themselves.
    pub errors: Vec<String>,
    /// The Configuration's files as Swarm configs/secrets, by file name.
    pub files: BTreeMap<String, PlannedFile>,
    /// Take over same-named Swarm services a Kargo install left (the Environment's `adopt`).
    pub adopt: bool,
    /// Doubt about the whole installation (the Configuration or Environment in force is
    /// missing or unusable): nothing is removed but what a Stack's own suspend or deletion asks.
    pub doubt: Option<Doubt>,
    /// Stacks in doubt (an object of theirs unusable, a member not found, a service
    /// claimed twice), with why: nothing of theirs is removed.
    pub frozen: BTreeMap<String, Doubt>,
    /// The problems (of `errors`, a stack's `errors` or a service's `desired`) that name an
    /// object or file not stored: it may simply not be applied yet, so `kargo apply` warns
    /// about them instead of refusing (files can be applied in any order).
    pub pending: BTreeSet<String>,
}

/// Why the desired state cannot be trusted to remove anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doubt {
    /// CamelCase reason for conditions and events (`EnvironmentNotFound`, `InvalidObject`, …).
    pub reason: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl Doubt {
    fn new(reason: &'static str, message: String) -> Self {
        Doubt { reason, message }
    }
}

/// A Configuration file as the Swarm config or secret it becomes.
#[derive(Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Swarm name, new for each content: for a config, [`config_name`] (scoped to the
    /// installation); for a sensitive file stored in plaintext, [`content_name`] (the name
    /// an earlier kargo gave it, so upgrading renames nothing); for a sealed file,
    /// `<file>-<10 hex of an HMAC keyed with the controller's naming key>`.
    pub swarm_name: String,
    /// The name an earlier kargo gave the same config ([`content_name`]): a live service
    /// that mounts it by that name keeps it, so upgrading kargo rolls nothing.
    pub previous_name: Option<String>,
    /// The content after interpolation (for `template: true`); empty when sealed and not opened.
    pub content: String,
    /// A Swarm secret instead of a config; the content is never printed.
    pub sensitive: bool,
    /// Sealed, and not opened by this plan (no keys): the content is unknown, the name is
    /// the one the controller recorded for the same sealed value, else a stand-in.
    pub unopened: bool,
    /// sha256 of the sealed text, for a sealed file.
    pub sealed_digest: Option<String>,
}

/// What stands for a sealed file's Swarm name where the keys are not (`render`, `diff`)
/// and the controller has recorded none for its sealed value.
pub const SEALED_NAME_SUFFIX: &str = "sealed";

impl std::fmt::Debug for PlannedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let content: &str = if self.sensitive {
            "<redacted>"
        } else {
            &self.content
        };
        f.debug_struct("PlannedFile")
            .field("swarm_name", &self.swarm_name)
            .field("previous_name", &self.previous_name)
            .field("content", &content)
            .field("sensitive", &self.sensitive)
            .field("unopened", &self.unopened)
            .finish()
    }
}

/// One deployed stack.
#[derive(Clone, Debug)]
pub struct PlannedStack {
    /// Stack name.
    pub name: String,
    /// Stacks that must be Ready first (its dependsOn, plus the previous one when ordered).
    pub waits_for: Vec<String>,
    /// Its services, in order.
    pub services: Vec<PlannedService>,
    /// Problems that make the stack not Ready.
    pub errors: Vec<String>,
}

/// One service of a deployed stack.
#[derive(Clone, Debug)]
pub struct PlannedService {
    /// Service name.
    pub name: String,
    /// The merged configuration of the service (default ⊕ user ⊕ settings, interpolated).
    pub merged: Option<Value>,
    /// What the merged spec renders to, or why it cannot be deployed.
    pub desired: Result<DesiredService, String>,
    /// Services of the stack that must be Ready first.
    pub depends_on: Vec<String>,
    /// Why the policy refuses the merged spec, if it does (`desired` is then that error):
    /// nothing is deployed for it, and a running service is kept as it is.
    pub policy: Option<String>,
}

impl Plan {
    /// The services the policy refuses: (stack, service, why).
    pub fn policy_violations(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.stacks.iter().flat_map(|s| {
            s.services.iter().filter_map(move |p| {
                p.policy
                    .as_deref()
                    .map(|why| (s.name.as_str(), p.name.as_str(), why))
            })
        })
    }

    /// The stack that deploys a service, if any.
    pub fn stack_of(&self, service: &str) -> Option<&PlannedStack> {
        self.stacks
            .iter()
            .find(|s| s.services.iter().any(|p| p.name == service))
    }
}

/// Computes the plan for the Configuration named `configuration`.
///
/// `catalog` gives a default service's spec by name (the built-in catalog); it is used
/// only when the Configuration asks for `defaults: builtin`.
pub fn plan(
    snapshot: &Snapshot,
    configuration: &str,
    installation: &str,
    catalog: &dyn Fn(&str) -> Option<Value>,
) -> Plan {
    plan_scoped(snapshot, configuration, installation, catalog, None, None)
}

/// What a service of another Stack holds in a plan scoped to one Stack.
pub const NOT_RENDERED: &str = "not rendered: the plan covers another Stack";

/// [`plan`], rendering only the services of the Stack `only` when given: membership,
/// order, claims and doubt are still computed for every Stack (they are cheap), the merge,
/// interpolation, validation and rendering of other Stacks' services are not. A Stack's
/// reconcile costs what the Stack holds, not what the installation holds.
///
/// `keys` (the controller's) open sealed values in memory; without them (the CLI) a sealed
/// file's content stays unknown and its Swarm secret is named [`SEALED_NAME_SUFFIX`].
pub fn plan_scoped(
    snapshot: &Snapshot,
    configuration: &str,
    installation: &str,
    catalog: &dyn Fn(&str) -> Option<Value>,
    only: Option<&str>,
    keys: Option<&Keyring>,
) -> Plan {
    let mut out = Plan::default();
    let cfg = snapshot.configurations.get(configuration);
    let policy = cfg.and_then(|c| c.spec.policy.as_ref());
    let mut use_defaults = false;
    let mut env: Option<&Environment> = None;
    if let Some(cfg) = cfg {
        out.configuration = Some(cfg.name().to_string());
        use_defaults = cfg.spec.defaults.unwrap_or(DefaultsMode::Builtin) == DefaultsMode::Builtin;
        if let Some(env_name) = &cfg.spec.environment {
            out.environment = Some(env_name.clone());
            env = snapshot.environments.get(env_name);
            if env.is_none() {
                let doubt = match snapshot.invalid_reason(Kind::Environment, env_name) {
                    Some(why) => Doubt::new(
                        reasons::INVALID_OBJECT,
                        format!("Environment {env_name:?} is invalid: {why}"),
                    ),
                    None => {
                        let doubt = Doubt::new(
                            reasons::ENVIRONMENT_NOT_FOUND,
                            format!(
                                "Environment {env_name:?} (named by Configuration {:?}) not found",
                                cfg.name()
                            ),
                        );
                        out.pending.insert(doubt.message.clone());
                        doubt
                    }
                };
                out.errors.push(doubt.message.clone());
                out.doubt = Some(doubt);
            }
        }
    } else if let Some(why) = snapshot.invalid_reason(Kind::Configuration, configuration) {
        let message = format!("Configuration {configuration:?} is invalid: {why}");
        out.errors.push(message.clone());
        out.doubt = Some(Doubt::new(reasons::INVALID_OBJECT, message));
    } else if snapshot.configured_before {
        let message =
            format!("Configuration {configuration:?} not found (this installation had it before)");
        out.errors.push(message.clone());
        out.doubt = Some(Doubt::new(reasons::CONFIGURATION_NOT_FOUND, message));
    }

    let mut ctx = RenderContext::new(installation);
    if let Some(nets) = env.and_then(|e| e.spec.networks.as_ref()) {
        if let Some(f) = &nets.front {
            ctx.front_network = f.clone();
        }
        if let Some(b) = &nets.back {
            ctx.back_network = b.clone();
        }
    }
    // Resolved once for the whole plan. A variable past the bounds (the doubling bomb) makes
    // the Environment itself unusable: doubt, not a service-by-service "not set".
    let (variables, variable_errors) = env
        .map(|e| {
            let unset = e.spec.unset_variables.unwrap_or_default();
            let (v, errors, _) =
                crate::manifest::interpolate::resolve_variables_mode(&e.spec.variables, unset);
            (v, errors)
        })
        .unwrap_or_default();
    let too_large: Vec<String> = variable_errors
        .iter()
        .filter(|e| matches!(e, InterpolationError::TooLarge { .. }))
        .map(ToString::to_string)
        .collect();
    if let (Some(e), false) = (env, too_large.is_empty()) {
        let message = format!(
            "Environment {:?} is invalid: {}",
            e.name(),
            too_large.join("; ")
        );
        out.errors.push(message.clone());
        out.doubt
            .get_or_insert(Doubt::new(reasons::INVALID_OBJECT, message));
    }
    if let Some(cfg) = cfg {
        let sensitive_vars = env.map(|e| sensitive_variables(e, keys, &mut out));
        for (file, spec) in &cfg.spec.files {
            let planned = plan_file(
                cfg.name(),
                file,
                spec,
                &variables,
                sensitive_vars.as_ref(),
                keys,
                cfg.status.sealed_files.get(file),
            );
            match planned {
                Ok(mut p) => {
                    if !p.sensitive {
                        // A config of its own per installation; the earlier name is kept aside.
                        let scoped = config_name(installation, file, &p.content);
                        p.previous_name = Some(std::mem::replace(&mut p.swarm_name, scoped));
                    }
                    ctx.files.insert(file.clone(), p.swarm_name.clone());
                    out.files.insert(file.clone(), p);
                }
                Err(message) => {
                    out.errors.push(message.clone());
                    out.doubt
                        .get_or_insert(Doubt::new(reasons::INVALID_CONFIGURATION, message));
                }
            }
        }
    }
    // The catalog's password files (docs/security.md, "The catalog"): planned for each
    // password the Environment holds as a sensitive variable, unless the Configuration
    // ships a file of that name itself.
    if let (Some(cfg), Some(e), true) = (cfg, env, use_defaults) {
        for rule in crate::manifest::defaults::SECRET_PASSWORDS {
            if !e.spec.sensitive_variables.contains_key(rule.variable)
                || cfg.spec.files.contains_key(rule.file)
            {
                continue;
            }
            match catalog_file(e, rule, keys, cfg.status.sealed_files.get(rule.file)) {
                Ok(p) => {
                    ctx.files
                        .insert(rule.file.to_string(), p.swarm_name.clone());
                    out.files.insert(rule.file.to_string(), p);
                }
                Err(message) => {
                    out.errors.push(message.clone());
                    out.doubt
                        .get_or_insert(Doubt::new(reasons::INVALID_CONFIGURATION, message));
                }
            }
        }
    }
    if let Some(e) = env {
        for message in sensitive_misuse(snapshot, e) {
            out.errors.push(message);
        }
    }
    let stack_names: Vec<String> = match env {
        Some(e) => e.spec.stacks.clone(),
        None if cfg.is_some() && out.environment.is_some() => Vec::new(),
        // No Configuration ever: every Stack (the first-run convenience); a Configuration
        // that went missing is doubt (above), never a different deployment.
        None if out.doubt.is_none() => snapshot.stacks.keys().cloned().collect(),
        None => Vec::new(),
    };
    out.rollout = env.and_then(|e| e.spec.rollout);
    out.adopt = env.is_some_and(|e| e.spec.adopt);
    let ordered = env.is_some() && out.rollout.unwrap_or(Rollout::Ordered) == Rollout::Ordered;

    let mut claims: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut networks: BTreeSet<String> =
        [ctx.front_network.clone(), ctx.back_network.clone()].into();
    let mut previous: Option<String> = None;
    for stack_name in &stack_names {
        let Some(stack) = snapshot.stacks.get(stack_name) else {
            if let Some(why) = snapshot.invalid_reason(Kind::Stack, stack_name) {
                out.errors
                    .push(format!("Stack {stack_name:?} is invalid: {why}"));
                out.frozen.insert(
                    stack_name.clone(),
                    Doubt::new(
                        reasons::INVALID_OBJECT,
                        format!("Stack {stack_name:?} is invalid: {why}"),
                    ),
                );
            } else {
                // A listed Stack that is not there may be a typo in the list: the list is
                // in doubt, so nothing it leaves out is removed.
                let message = format!("Stack {stack_name:?} is listed but not found");
                out.pending.insert(message.clone());
                out.errors.push(message.clone());
                out.doubt
                    .get_or_insert(Doubt::new(reasons::STACK_NOT_FOUND, message));
            }
            continue;
        };
        if stack.spec.suspend || stack.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let mut planned = PlannedStack {
            name: stack_name.clone(),
            waits_for: stack.spec.depends_on.clone(),
            services: Vec::new(),
            errors: Vec::new(),
        };
        if ordered
            && let Some(p) = &previous
            && !planned.waits_for.contains(p)
        {
            planned.waits_for.insert(0, p.clone());
        }
        // The Stack's own files (docs/compose.md): keyed `<stack>/<file>` in the plan, by
        // file name for its services.
        let mut stack_files = BTreeMap::new();
        for (file, spec) in &stack.spec.files {
            match planned_file(installation, file, spec, &variables) {
                Ok(p) => {
                    stack_files.insert(file.clone(), p.swarm_name.clone());
                    out.files.insert(format!("{stack_name}/{file}"), p);
                }
                Err(list) => {
                    let message = format!("Stack {stack_name:?}: {list}");
                    planned.errors.push(message.clone());
                    out.frozen
                        .entry(stack_name.clone())
                        .or_insert_with(|| Doubt::new(reasons::INVALID_SPEC, message));
                }
            }
        }
        let stack_ctx = ctx.for_stack(&stack.spec, &stack_files);
        // Swarm name inside the Stack (`serviceName`, else the object's name) → the Service.
        let mut scoped_names: BTreeMap<String, &String> = BTreeMap::new();
        for svc_name in &stack.spec.services {
            let claimants = claims.entry(svc_name.clone()).or_default();
            claimants.push(stack_name.clone());
            if claimants.len() > 1 {
                // The first stack in rollout order deploys it; the error is in both.
                continue;
            }
            let user = snapshot
                .services
                .get(svc_name)
                .filter(|s| s.metadata.deletion_timestamp.is_none());
            // Two Services of one Stack would be one Swarm service `kargo-<stack>_<name>`
            // (docs/compose.md): the first in the Stack's order keeps it, the Stack is in
            // doubt, so nothing of either is removed.
            let scoped = user
                .and_then(|u| u.spec.service_name.clone())
                .unwrap_or_else(|| svc_name.clone());
            if let Some(first) = scoped_names.get(&scoped) {
                let message = format!(
                    "service {svc_name:?} would be the Swarm service kargo-{stack_name}_{scoped} of service {first:?}: give one of them another serviceName"
                );
                planned.errors.push(message.clone());
                out.frozen
                    .entry(stack_name.clone())
                    .or_insert_with(|| Doubt::new(reasons::SERVICE_NAME_TAKEN, message));
                continue;
            }
            scoped_names.insert(scoped, svc_name);
            let rendering = only.is_none_or(|o| o == stack_name);
            // (Another Stack's service needs the catalog only to know it exists.)
            let default = if use_defaults && (rendering || user.is_none()) {
                catalog(svc_name).map(|spec| {
                    crate::manifest::defaults::for_environment(svc_name, spec, &|variable| {
                        env.is_some_and(|e| e.spec.sensitive_variables.contains_key(variable))
                    })
                })
            } else {
                None
            };
            if user.is_none() && default.is_none() {
                if snapshot.services.contains_key(svc_name) {
                    // Being deleted: intent; its Swarm service goes.
                    planned
                        .errors
                        .push(format!("service {svc_name:?} is being deleted"));
                } else {
                    // Unusable or missing (a typo in the list?): doubt; it keeps running.
                    let doubt = match snapshot.invalid_reason(Kind::Service, svc_name) {
                        Some(why) => Doubt::new(
                            reasons::INVALID_OBJECT,
                            format!("service {svc_name:?} is invalid: {why}"),
                        ),
                        // A catalog entry the Configuration's `defaults: none` leaves out is
                        // no missing object: the Stack names what this Configuration refuses.
                        None if cfg.is_some() && !use_defaults && catalog(svc_name).is_some() => {
                            Doubt::new(
                                reasons::SERVICE_NOT_FOUND,
                                format!(
                                    "service {svc_name:?} not found: it is a built-in default, but Configuration {configuration:?} has `defaults: none` (set `defaults: builtin`, or apply a Service named {svc_name:?})"
                                ),
                            )
                        }
                        None => {
                            let message = format!("service {svc_name:?} not found");
                            out.pending.insert(message.clone());
                            Doubt::new(reasons::SERVICE_NOT_FOUND, message)
                        }
                    };
                    planned.errors.push(doubt.message.clone());
                    out.frozen.entry(stack_name.clone()).or_insert(doubt);
                }
                continue;
            }
            if !rendering {
                planned.services.push(PlannedService {
                    name: svc_name.clone(),
                    depends_on: user
                        .and_then(|u| u.spec.depends_on.clone())
                        .unwrap_or_default(),
                    merged: None,
                    desired: Err(NOT_RENDERED.to_string()),
                    policy: None,
                });
                continue;
            }
            let raw = user.and(snapshot.service_specs.get(svc_name));
            let restarted = user.and_then(|u| u.metadata.annotations.get(RESTARTED_AT_ANNOTATION));
            let merged = merged_spec(raw, default.as_ref(), env, &variables, svc_name);
            let merged_json = merged.as_ref().ok().map(|(v, _)| v.clone());
            let mut refused = None;
            let desired = merged.and_then(|(_, spec)| {
                // The policy refuses before anything renders: nothing of it reaches Swarm.
                let builtin = default
                    .as_ref()
                    .and_then(|_| crate::policy::catalog_exemption(svc_name));
                let findings = crate::policy::check(
                    policy,
                    svc_name,
                    &spec,
                    &|n| stack_ctx.network(stack_name, n),
                    builtin,
                );
                if !findings.is_empty() {
                    let why =
                        crate::policy::describe(crate::policy::level(policy), svc_name, &findings);
                    refused = Some(why.clone());
                    return Err(why);
                }
                let d = render_service(&stack_ctx, stack_name, svc_name, &spec).map_err(|e| {
                    if matches!(e, crate::swarm::RenderError::UnknownFile { .. }) {
                        out.pending.insert(e.to_string());
                    }
                    e.to_string()
                })?;
                Ok(
                    match restarted.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
                        Some(t) => with_force_update(d, force_update_counter(&t)),
                        None => d,
                    },
                )
            });
            match &desired {
                Ok(d) => networks.extend(d.networks.iter().cloned()),
                Err(e) => {
                    // A refusal of the policy is doubt too: what runs is kept, not updated.
                    let reason = match refused {
                        Some(_) => reasons::POLICY_VIOLATION,
                        None => reasons::INVALID_SPEC,
                    };
                    out.frozen
                        .entry(stack_name.clone())
                        .or_insert_with(|| Doubt::new(reason, e.clone()));
                }
            }
            if let Some(why) = &refused {
                planned.errors.push(why.clone());
            }
            planned.services.push(PlannedService {
                name: svc_name.clone(),
                depends_on: user
                    .and_then(|u| u.spec.depends_on.clone())
                    .unwrap_or_default(),
                merged: merged_json,
                desired,
                policy: refused,
            });
        }
        previous = Some(stack_name.clone());
        out.stacks.push(planned);
    }
    // A second claim is an error in every claiming stack's status (docs/design.md, "The model").
    for (service, stacks) in claims.iter().filter(|(_, s)| s.len() > 1) {
        for s in out.stacks.iter_mut().filter(|s| stacks.contains(&s.name)) {
            let others: Vec<&str> = stacks
                .iter()
                .filter(|o| **o != s.name)
                .map(String::as_str)
                .collect();
            let message = format!(
                "service {service:?} is also claimed by stack {}",
                others.join(", ")
            );
            out.frozen
                .entry(s.name.clone())
                .or_insert_with(|| Doubt::new(reasons::SERVICE_CLAIMED_TWICE, message.clone()));
            s.errors.push(message);
        }
    }
    out.networks = networks.into_iter().collect();
    out
}

/// A Configuration or Stack file as its Swarm config ([`config_name`], scoped to the
/// installation) or secret ([`content_name`]), after interpolation for templates; `Err`
/// lists the interpolation errors.
fn planned_file(
    installation: &str,
    file: &str,
    spec: &crate::api::ConfigFile,
    variables: &BTreeMap<String, String>,
) -> Result<PlannedFile, String> {
    if spec.sealed.is_some() {
        // Sealed values are opened with the installation's keys, which only the
        // Configuration's files are planned with.
        return Err(format!(
            "file {file}: a sealed file belongs in the Configuration's files, not a Stack's"
        ));
    }
    let content = if spec.template {
        let path = format!("/spec/files/{file}/content");
        crate::manifest::interpolate::interpolate_str(&spec.content, variables, &path).map_err(
            |errors| {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                list.join("; ")
            },
        )?
    } else {
        spec.content.clone()
    };
    let (swarm_name, previous_name) = if spec.sensitive {
        (content_name(file, &content), None)
    } else {
        (
            config_name(installation, file, &content),
            Some(content_name(file, &content)),
        )
    };
    Ok(PlannedFile {
        swarm_name,
        previous_name,
        content,
        sensitive: spec.sensitive,
        unopened: false,
        sealed_digest: None,
    })
}

/// default ⊕ user ⊕ settings → typed spec; `Err` says why the service cannot be deployed.
fn merged_spec(
    user: Option<&Value>,
    default: Option<&Value>,
    env: Option<&Environment>,
    variables: &BTreeMap<String, String>,
    name: &str,
) -> Result<(Value, ServiceSpec), String> {
    if user.is_none() && default.is_none() {
        return Err(format!(
            "service {name:?} not found (no Service object and no default)"
        ));
    }
    let layers = default.into_iter().chain(user);
    let below = merge_layers(layers);
    let merged = match env.and_then(|e| e.spec.services.get(name)) {
        Some(settings) => {
            let patch = settings_patch(settings, &below);
            merge_layers([&below, &patch])
        }
        None => below,
    };
    let unset = env.and_then(|e| e.spec.unset_variables).unwrap_or_default();
    let merged =
        crate::manifest::interpolate::interpolate_value_mode(&merged, variables, "/spec", unset)
            .map(|(v, _)| v)
            .map_err(|errors| {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!("service {name:?}: {}", list.join("; "))
            })?;
    // etcd's request limit, checked again here: the rendered spec lands in Swarm and the
    // merged one in statuses.
    crate::manifest::limits::check_object_size(&format!("service/{name}"), &merged)
        .map_err(|e| e.to_string())?;
    let violations = crate::manifest::validate::validate_spec(
        Kind::Service,
        crate::api::schema::Mode::Merged,
        &merged,
    );
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(format!("service {name:?}: {}", list.join("; ")));
    }
    let spec = serde_json::from_value(merged.clone())
        .map_err(|e| format!("service {name:?}: merged spec is invalid: {e}"))?;
    Ok((merged, spec))
}

/// The policy refusals in `after` that a write of `touched` brings: those of a Service
/// written, and any not in `before` (a Configuration dropping an exemption, an Environment
/// overriding a catalog image). `apply` refuses them before writing anything; one that
/// was already there and is not touched stays the controller's to report.
pub fn new_policy_violations(
    before: &Plan,
    after: &Plan,
    touched: &[DynamicObject],
) -> Vec<String> {
    let old: BTreeSet<(&str, &str)> = before
        .policy_violations()
        .map(|(stack, svc, _)| (stack, svc))
        .collect();
    after
        .policy_violations()
        .filter(|(stack, svc, _)| {
            !old.contains(&(*stack, *svc))
                || touched
                    .iter()
                    .any(|o| o.kind == Kind::Service && o.metadata.name == *svc)
        })
        .map(|(stack, _, why)| format!("stack {stack:?}: {why}"))
        .collect()
}

#[cfg(test)]
mod restart_tests {
    use super::force_update_counter;

    #[test]
    fn restarts_within_one_second_force_two_updates() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time");
        let first = force_update_counter(&at("2026-11-25T10:00:00.120Z"));
        let second = force_update_counter(&at("2026-11-25T10:00:00.870Z"));
        assert_ne!(first, second);
        assert_eq!(
            force_update_counter(&at("2026-11-25T10:00:00Z")),
            1_795_600_800,
            "a whole-second time keeps its seconds"
        );
    }
}

#[cfg(test)]
mod catalog_secret_tests {
    use serde_json::{Value, json};

    use crate::api::{DynamicObject, Kind};
    use crate::plan::{Snapshot, plan};

    fn planned(variables: Value) -> super::Plan {
        planned_with(variables, &crate::manifest::catalog_spec)
    }

    fn planned_with(variables: Value, catalog: &dyn Fn(&str) -> Option<Value>) -> super::Plan {
        let mut env = json!({"stacks": ["data"]});
        if let (Some(e), Some(v)) = (env.as_object_mut(), variables.as_object()) {
            e.extend(v.clone());
        }
        let objects = vec![
            DynamicObject::new(Kind::Configuration, "main", json!({"environment": "prod"})),
            DynamicObject::new(Kind::Environment, "prod", env),
            DynamicObject::new(
                Kind::Stack,
                "data",
                json!({"services": ["postgis", "grafana", "mariadb", "mongodb"]}),
            ),
        ];
        plan(&Snapshot::from_objects(&objects), "main", "/kargo", catalog)
    }

    fn env_of(p: &super::Plan, service: &str) -> Vec<String> {
        let d = p.stacks[0]
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.desired.as_ref().ok())
            .unwrap_or_else(|| panic!("{service}: {:?}", p.errors));
        d.spec["TaskTemplate"]["ContainerSpec"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn sensitive_catalog_passwords_are_secrets_not_env() {
        const PW: &str = "s3cr3t-Pw";
        let p = planned(
            json!({"variables": {"SUBDOMAIN": "example.org"}, "sensitiveVariables": {
            "POSTGIS_PASSWORD": PW, "GRAFANA_ADMIN_PASSWORD": PW,
            "MARIADB_ROOT_PASSWORD": PW, "MONGODB_ROOT_PASSWORD": PW}}),
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        for (service, file) in [
            ("postgis", "postgis_password"),
            ("grafana", "grafana_admin_password"),
            ("mariadb", "mariadb_root_password"),
            ("mongodb", "mongodb_root_password"),
        ] {
            let env = env_of(&p, service);
            assert!(
                env.iter()
                    .any(|e| e.ends_with(&format!("_FILE=/run/secrets/{file}"))),
                "{service}: {env:?}"
            );
            let d = p.stacks[0]
                .services
                .iter()
                .find(|s| s.name == service)
                .and_then(|s| s.desired.as_ref().ok())
                .unwrap();
            let text = d.spec.to_string();
            assert!(!text.contains(PW), "{service}: {text}");
            let planned = &p.files[file];
            assert!(planned.sensitive && planned.content == PW, "{file}");
            let secrets = &d.spec["TaskTemplate"]["ContainerSpec"]["Secrets"];
            assert_eq!(secrets[0]["SecretName"], json!(planned.swarm_name));
            assert_eq!(secrets[0]["File"]["Name"], json!(file));
        }
    }

    #[test]
    fn plain_catalog_passwords_render_as_before() {
        let p = planned(json!({"variables": {"SUBDOMAIN": "example.org",
            "POSTGIS_PASSWORD": "pg", "GRAFANA_ADMIN_PASSWORD": "gf",
            "MARIADB_ROOT_PASSWORD": "my"}}));
        assert!(env_of(&p, "postgis").contains(&"POSTGRES_PASSWORD=pg".to_string()));
        assert!(env_of(&p, "grafana").contains(&"GF_SECURITY_ADMIN_PASSWORD=gf".to_string()));
        assert!(env_of(&p, "mariadb").contains(&"MYSQL_ROOT_PASSWORD=my".to_string()));
        assert!(env_of(&p, "mongodb").is_empty());
        assert!(p.files.is_empty(), "{:?}", p.files.keys());
    }

    #[test]
    fn upgrading_with_plain_passwords_renders_the_same_specs() {
        // The catalog before passwords became secrets: a running service's spec hash must
        // not move when kargo is upgraded (nothing rolls).
        let before = |name: &str| -> Option<Value> {
            let text = match name {
                "grafana" => {
                    include_str!("../../tests/fixtures/catalog-env-passwords/grafana.yaml")
                }
                "mariadb" => {
                    include_str!("../../tests/fixtures/catalog-env-passwords/mariadb.yaml")
                }
                "mongodb" => {
                    include_str!("../../tests/fixtures/catalog-env-passwords/mongodb.yaml")
                }
                "postgis" => {
                    include_str!("../../tests/fixtures/catalog-env-passwords/postgis.yaml")
                }
                _ => return None,
            };
            serde_yaml::from_str::<Value>(text)
                .ok()?
                .get("spec")
                .cloned()
        };
        let variables = json!({"variables": {"SUBDOMAIN": "example.org",
            "POSTGIS_PASSWORD": "pg", "GRAFANA_ADMIN_PASSWORD": "gf",
            "MARIADB_ROOT_PASSWORD": "my", "MONGODB_ROOT_PASSWORD": "mg"}});
        let old = planned_with(variables.clone(), &before);
        let new = planned(variables);
        let hashes = |p: &super::Plan| -> Vec<String> {
            p.stacks[0]
                .services
                .iter()
                .map(|s| {
                    s.desired
                        .as_ref()
                        .map(|d| d.hash.clone())
                        .unwrap_or_default()
                })
                .collect()
        };
        assert_eq!(hashes(&old).len(), 4);
        assert!(
            hashes(&old).iter().all(|h| !h.is_empty()),
            "{:?}",
            old.errors
        );
        assert_eq!(hashes(&new), hashes(&old));
    }
}
