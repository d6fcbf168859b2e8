//! Checks across the objects of all the inputs (see the module documentation of
//! [`super`] for which references are checked when).
//!
//! Workers extract [`Facts`] from each document (its name and the names it refers to, with
//! their positions) and drop the document, so a large run keeps only these small records.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::messages::{closest, did_you_mean};
use super::schema_errors::{display_path, escape};
use super::{Diagnostic, Rule};
use crate::api::Kind;
use crate::manifest::defaults;
use crate::manifest::yaml::{Document, Position};

/// Longest Swarm service name.
const SWARM_NAME_MAX: usize = 63;

/// Which field a [`Reference`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// A Stack's `services` item.
    StackMember,
    /// A Stack's `dependsOn` item.
    StackDependsOn,
    /// A Service's `dependsOn` item.
    ServiceDependsOn,
    /// A Service's `configs[].file` or `secrets[].file`.
    MountedFile,
    /// An Environment's `stacks` item.
    EnvironmentStack,
    /// A key of an Environment's `services`.
    EnvironmentSettings,
    /// A Configuration's `environment`.
    ConfigurationEnvironment,
}

/// A name one object gives for another, with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Reference {
    field: Field,
    name: String,
    path: String,
    at: Position,
}

/// What the cross-object checks need of one document.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    document: usize,
    kind: Kind,
    name: String,
    name_at: Position,
    references: Vec<Reference>,
    /// A Configuration's file names.
    files: Vec<String>,
    /// The positions above are real (false for a document the fast reader read, whose
    /// positions are unknown until its file is read again).
    located: bool,
}

impl Facts {
    /// Whether the positions of these facts are real.
    pub(crate) fn is_located(&self) -> bool {
        self.located
    }

    /// The facts of a document of `kind` named `name`.
    pub(crate) fn extract(doc: &Document, kind: Kind, name: &str) -> Facts {
        let mut facts = Facts {
            document: doc.index,
            kind,
            name: name.to_string(),
            name_at: doc
                .positions
                .value("/metadata/name")
                .unwrap_or(Position::START),
            references: Vec::new(),
            files: Vec::new(),
            located: doc.positions.is_known(),
        };
        let value = &doc.value;
        let mut strings = |field: Field, pointer: &str| {
            let Some(items) = value.pointer(pointer).and_then(Value::as_array) else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                if let Some(name) = item.as_str() {
                    let p = format!("{pointer}/{i}");
                    facts
                        .references
                        .push(reference(doc, field, name, &p, false));
                }
            }
        };
        match kind {
            Kind::Stack => {
                strings(Field::StackMember, "/spec/services");
                strings(Field::StackDependsOn, "/spec/dependsOn");
            }
            Kind::Service => {
                strings(Field::ServiceDependsOn, "/spec/dependsOn");
                for pointer in ["/spec/configs", "/spec/secrets"] {
                    let Some(items) = value.pointer(pointer).and_then(Value::as_array) else {
                        continue;
                    };
                    for (i, item) in items.iter().enumerate() {
                        if let Some(file) = item.get("file").and_then(Value::as_str) {
                            let p = format!("{pointer}/{i}/file");
                            facts.references.push(reference(
                                doc,
                                Field::MountedFile,
                                file,
                                &p,
                                false,
                            ));
                        }
                    }
                }
            }
            Kind::Environment => {
                strings(Field::EnvironmentStack, "/spec/stacks");
                if let Some(settings) = value.pointer("/spec/services").and_then(Value::as_object) {
                    for service in settings.keys() {
                        let p = format!("/spec/services/{}", escape(service));
                        facts.references.push(reference(
                            doc,
                            Field::EnvironmentSettings,
                            service,
                            &p,
                            true,
                        ));
                    }
                }
            }
            Kind::Configuration => {
                if let Some(env) = value.pointer("/spec/environment").and_then(Value::as_str) {
                    facts.references.push(reference(
                        doc,
                        Field::ConfigurationEnvironment,
                        env,
                        "/spec/environment",
                        false,
                    ));
                }
                if let Some(files) = value.pointer("/spec/files").and_then(Value::as_object) {
                    facts.files = files.keys().cloned().collect();
                }
            }
        }
        facts
    }

    /// `kind/name`.
    fn reference(&self) -> String {
        format!("{}/{}", self.kind.singular(), self.name)
    }
}

/// The facts of one document and the file they come from (the file's name is kept once per
/// file, not copied into every document's facts).
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFile<'a> {
    /// The file, as named.
    pub(crate) file: &'a str,
    /// The document's facts.
    pub(crate) facts: &'a Facts,
}

impl std::ops::Deref for InFile<'_> {
    type Target = Facts;

    fn deref(&self) -> &Facts {
        self.facts
    }
}

impl InFile<'_> {
    fn diagnostic(&self, path: &str, at: Position, rule: Rule, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            line: at.line,
            column: at.column,
            document: Some(self.document),
            object: Some(self.reference()),
            path: path.to_string(),
            rule,
            message,
        }
    }
}

/// A reference at `pointer` (at its key when `key`).
fn reference(doc: &Document, field: Field, name: &str, pointer: &str, key: bool) -> Reference {
    let p = &doc.positions;
    // A document the fast reader read has no positions (see `Facts::located`).
    let at = if !p.is_known() {
        Position::START
    } else if key {
        p.key(pointer).unwrap_or_else(|| p.nearest(pointer))
    } else {
        p.value(pointer).unwrap_or_else(|| p.nearest(pointer))
    };
    Reference {
        field,
        name: name.to_string(),
        path: display_path(&doc.value, pointer),
        at,
    }
}

/// Every cross-object problem among `objects`.
pub(super) fn check(objects: &[InFile<'_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let names = |kind: Kind| -> BTreeSet<&str> {
        objects
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.name.as_str())
            .collect()
    };
    let services = names(Kind::Service);
    let stacks = names(Kind::Stack);
    let environments = names(Kind::Environment);
    let has_configurations = objects.iter().any(|f| f.kind == Kind::Configuration);
    let files: BTreeSet<&str> = objects
        .iter()
        .flat_map(|f| f.files.iter().map(String::as_str))
        .collect();
    let catalog = defaults::names();
    let service_candidates = || services.iter().copied().chain(catalog.iter().copied());
    let is_service = |name: &str| services.contains(name) || defaults::contains(name);

    duplicates(objects, &mut out);
    for f in objects {
        for r in &f.references {
            let problem = match r.field {
                Field::StackMember => {
                    // `kargo-<stack>_<service>`, counted without building it.
                    let length = 7 + f.name.chars().count() + r.name.chars().count();
                    if length > SWARM_NAME_MAX {
                        let swarm = format!("kargo-{}_{}", f.name, r.name);
                        out.push(f.diagnostic(&r.path, r.at, Rule::Length, format!(
                            "the Swarm service name `{swarm}` would be {length} characters; Swarm allows {SWARM_NAME_MAX}: shorten the stack or service name"
                        )));
                    }
                    (!services.is_empty() && !is_service(&r.name)).then(|| {
                        format!(
                            "service `{}` is neither a Service in the input nor a built-in catalog entry{}",
                            r.name,
                            did_you_mean(closest(&r.name, service_candidates()))
                        )
                    })
                }
                Field::ServiceDependsOn => (!services.is_empty() && !is_service(&r.name))
                    .then(|| {
                        format!(
                            "service `{}` is neither a Service in the input nor a built-in catalog entry{}",
                            r.name,
                            did_you_mean(closest(&r.name, service_candidates()))
                        )
                    }),
                Field::EnvironmentSettings => (!services.is_empty() && !is_service(&r.name))
                    .then(|| {
                        format!(
                            "settings for service `{}`, which is neither a Service in the input nor a built-in catalog entry{}",
                            r.name,
                            did_you_mean(closest(&r.name, service_candidates()))
                        )
                    }),
                Field::StackDependsOn | Field::EnvironmentStack => {
                    (!stacks.is_empty() && !stacks.contains(r.name.as_str())).then(|| {
                        format!(
                            "stack `{}` is not a Stack in the input{}",
                            r.name,
                            did_you_mean(closest(&r.name, stacks.iter().copied()))
                        )
                    })
                }
                Field::ConfigurationEnvironment => (!environments.is_empty()
                    && !environments.contains(r.name.as_str()))
                .then(|| {
                    format!(
                        "environment `{}` is not an Environment in the input{}",
                        r.name,
                        did_you_mean(closest(&r.name, environments.iter().copied()))
                    )
                }),
                Field::MountedFile => {
                    (has_configurations && !files.contains(r.name.as_str())).then(|| {
                        format!(
                            "file `{}` is not in the files of any Configuration in the input{}",
                            r.name,
                            did_you_mean(closest(&r.name, files.iter().copied()))
                        )
                    })
                }
            };
            if let Some(message) = problem {
                out.push(f.diagnostic(&r.path, r.at, Rule::Reference, message));
            }
        }
    }
    cycles(objects, Kind::Stack, Field::StackDependsOn, &mut out);
    cycles(objects, Kind::Service, Field::ServiceDependsOn, &mut out);
    out
}

/// The same kind and name twice: the later one is reported, naming the first.
fn duplicates(objects: &[InFile<'_>], out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(Kind, &str), &InFile<'_>> = HashMap::with_capacity(objects.len());
    for f in objects {
        if let Some(first) = seen.get(&(f.kind, f.name.as_str())) {
            out.push(f.diagnostic(
                "metadata.name",
                f.name_at,
                Rule::Duplicate,
                format!(
                    "{} `{}` is defined twice; the first is at {}:{}:{}",
                    f.kind, f.name, first.file, first.name_at.line, first.name_at.column
                ),
            ));
        } else {
            seen.insert((f.kind, f.name.as_str()), f);
        }
    }
}

/// `dependsOn` cycles among the objects of `kind`: each cycle reported once, at the
/// `dependsOn` item that closes it. Iterative, so a long chain cannot overflow the stack.
fn cycles(objects: &[InFile<'_>], kind: Kind, field: Field, out: &mut Vec<Diagnostic>) {
    // Most inputs have no `dependsOn` at all: then there is no cycle to look for.
    if !objects
        .iter()
        .any(|f| f.kind == kind && f.references.iter().any(|r| r.field == field))
    {
        return;
    }
    let nodes: HashMap<&str, InFile<'_>> = objects
        .iter()
        .filter(|f| f.kind == kind)
        .map(|f| (f.name.as_str(), *f))
        .collect();
    let edges = |name: &str| -> Vec<&Reference> {
        nodes
            .get(name)
            .map(|f| {
                f.references
                    .iter()
                    .filter(|r| r.field == field && nodes.contains_key(r.name.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut done: HashSet<&str> = HashSet::new();
    let mut reported: HashSet<Vec<&str>> = HashSet::new();
    let mut roots: Vec<&str> = nodes.keys().copied().collect();
    roots.sort_unstable();
    for root in roots {
        if done.contains(root) {
            continue;
        }
        let first = edges(root);
        if first.is_empty() {
            // Most objects depend on nothing: no walk to make.
            done.insert(root);
            continue;
        }
        // (name, its edges, next edge to follow)
        let mut stack: Vec<(&str, Vec<&Reference>, usize)> = vec![(root, first, 0)];
        let mut on_path: HashSet<&str> = HashSet::from([root]);
        while let Some((name, list, next)) = stack.last_mut() {
            let name = *name;
            let Some(edge) = list.get(*next).copied() else {
                done.insert(name);
                on_path.remove(name);
                stack.pop();
                continue;
            };
            *next += 1;
            let target = edge.name.as_str();
            if on_path.contains(target) {
                let start = stack.iter().position(|(n, _, _)| *n == target).unwrap_or(0);
                let mut cycle: Vec<&str> = stack.iter().skip(start).map(|(n, _, _)| *n).collect();
                let mut key = cycle.clone();
                key.sort_unstable();
                if reported.insert(key) {
                    cycle.push(target);
                    if let Some(f) = nodes.get(name) {
                        out.push(f.diagnostic(
                            &edge.path,
                            edge.at,
                            Rule::Cycle,
                            format!("dependsOn cycle: {}", cycle.join(" → ")),
                        ));
                    }
                }
            } else if !done.contains(target) {
                on_path.insert(target);
                stack.push((target, edges(target), 0));
            }
        }
    }
}
