//! `kargo get`: list or show objects, optionally watching for changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;

use crate::api::{DynamicObject, Kind};
use crate::store::{ObjectList, ObjectRef, Store, StoreError, WatchEvent};

use super::output::{self, OutputFormat, TableOptions, print_objects};
use super::selector::Selector;
use super::{CliError, ExitStatus, GlobalArgs, target};

const EXAMPLES: &str = "Examples:
  kargo get services
  kargo get stacks,services
  kargo get all -o name
  kargo get stack apps -o yaml
  kargo get service/web stack/apps -o json
  kargo get svc -l tier=frontend -o wide --show-labels
  kargo get svc -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'
  kargo get stacks -w";

/// Show objects of one or more kinds as tables, YAML, JSON, names or a JSONPath template.
///
/// Services show STACK, IMAGE, READY (tasks of the current spec running/desired),
/// UP-TO-DATE, AVAILABLE (serving, any spec), STATUS and AGE, as kubectl's deployments;
/// stacks show SERVICES (ready/total), READY, STATUS (`Suspended`...) and AGE. Several kinds (`stacks,services`, `all`) print a
/// table per kind, or one List. `-w` prints a line per change until Ctrl-C.
/// Exit codes: 0 shown, 1 a named object does not exist, 2 usage or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A kind (configuration, environment, stack, service; plurals and svc, st, env, cfg
    /// work) and names; kinds joined by commas or `all`; or KIND/NAME....
    #[arg(required = true, value_name = "KIND [NAME]...", add = super::complete::targets())]
    targets: Vec<String>,
    /// Output: table, wide, yaml, json, name, or jsonpath=TEMPLATE.
    #[arg(short, long, default_value = "table", value_parser = OutputFormat::parse, add = super::complete::output_formats())]
    output: OutputFormat,
    /// Only objects whose labels match (`tier=front`, `tier!=x`, `tier in (a,b)`, `!tier`).
    #[arg(short = 'l', long, value_parser = str::parse::<Selector>)]
    selector: Option<Selector>,
    /// After printing, watch for changes and print each one.
    #[arg(short, long)]
    watch: bool,
    /// Watch for changes without printing the current objects first.
    #[arg(long)]
    watch_only: bool,
    /// Add a LABELS column to tables.
    #[arg(long)]
    show_labels: bool,
    /// Succeed (printing nothing) when a named object does not exist.
    #[arg(long)]
    ignore_not_found: bool,
}

struct Query {
    /// The kinds asked for, in the order given.
    kinds: Vec<Kind>,
    /// The objects named (none: all of the kinds).
    names: Vec<ObjectRef>,
    selector: Selector,
}

impl Query {
    fn wants(&self, o: &DynamicObject) -> bool {
        self.kinds.contains(&o.kind)
            && (self.names.is_empty()
                || self
                    .names
                    .iter()
                    .any(|r| r.kind == o.kind && r.name == o.metadata.name))
            && self.selector.matches(&o.metadata.labels)
    }

    /// Lists what may match (one kind, or all kinds in one read and so one revision).
    async fn list(&self, store: &Store) -> Result<ObjectList, StoreError> {
        match self.kinds.as_slice() {
            [kind] => store.list(*kind).await,
            _ => store.list_all().await,
        }
    }

    /// The matching objects of `list`, kind by kind in the order asked, each kind's by name.
    fn select(&self, list: &ObjectList) -> Vec<DynamicObject> {
        let mut objects: Vec<DynamicObject> = list
            .items
            .iter()
            .filter(|o| self.wants(o))
            .cloned()
            .collect();
        let place = |k: Kind| self.kinds.iter().position(|x| *x == k);
        objects.sort_by(|a, b| {
            (place(a.kind), &a.metadata.name).cmp(&(place(b.kind), &b.metadata.name))
        });
        objects
    }
}

/// Objects seen by a watch, by kind and name.
type Seen = BTreeMap<(Kind, String), DynamicObject>;

fn key(o: &DynamicObject) -> (Kind, String) {
    (o.kind, o.metadata.name.clone())
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (kinds, names) = target::kinds_and_refs(&args.targets)?;
    let query = Query {
        kinds,
        names,
        selector: args.selector.clone().unwrap_or_default(),
    };
    let store = g.store().await?;
    let list = query.list(&store).await?;
    for bad in &list.invalid {
        output::note(format_args!(
            "warning: skipped {}: {}",
            bad.key, bad.message
        ));
    }
    let mut status = ExitStatus::Success;
    let objects = query.select(&list);
    for r in &query.names {
        let found = objects
            .iter()
            .any(|o| o.kind == r.kind && o.metadata.name == r.name);
        if !found && !args.ignore_not_found {
            output::note(format_args!("error: {} {:?} not found", r.kind, r.name));
            status = ExitStatus::Failure;
        }
    }
    let table = TableOptions {
        show_labels: args.show_labels,
        no_header: false,
        // As kubectl: several kinds, or objects named KIND/NAME.
        kind_prefix: query.kinds.len() > 1 || args.targets.iter().any(|t| t.contains('/')),
    };
    // Kinds whose table header is out (a table per kind).
    let mut headers: BTreeSet<Kind> = BTreeSet::new();
    if !args.watch_only {
        if objects.is_empty() && query.names.is_empty() && args.output.is_table() {
            match query.kinds.as_slice() {
                [kind] => output::note(format_args!("No {} found.", kind.plural())),
                _ => output::note("No objects found."),
            }
        }
        print_objects(&objects, &args.output, query.names.len() == 1, table)?;
        headers = objects.iter().map(|o| o.kind).collect();
    }
    if !(args.watch || args.watch_only) {
        return Ok(status);
    }
    let cache: Seen = objects.into_iter().map(|o| (key(&o), o)).collect();
    watch(
        &store,
        &query,
        &args.output,
        table,
        headers,
        cache,
        list.revision,
    )
    .await
}

/// Prints one changed object as `get -w` does.
fn print_change(
    o: &DynamicObject,
    format: &OutputFormat,
    table: TableOptions,
    headers: &mut BTreeSet<Kind>,
) -> Result<(), CliError> {
    if matches!(format, OutputFormat::Plain(output::Format::Yaml)) {
        output::out("---")?;
    }
    let opts = TableOptions {
        no_header: headers.contains(&o.kind),
        ..table
    };
    print_objects(std::slice::from_ref(o), format, true, opts)?;
    if matches!(format, OutputFormat::JsonPath(_)) {
        output::out("")?;
    }
    headers.insert(o.kind);
    Ok(())
}

async fn watch(
    store: &Store,
    query: &Query,
    format: &OutputFormat,
    table: TableOptions,
    mut headers: BTreeSet<Kind>,
    mut cache: Seen,
    mut revision: i64,
) -> Result<ExitStatus, CliError> {
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let mut stream = match store.watch(revision + 1).await {
            Ok(s) => s,
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            let event = tokio::select! {
                _ = &mut interrupted => return Ok(ExitStatus::Success),
                ev = stream.next() => ev,
            };
            match event {
                Some(Ok(WatchEvent::Applied(o))) => {
                    if let Some(r) = o.metadata.resource_version.as_deref() {
                        revision = revision.max(r.parse().unwrap_or(revision));
                    }
                    if query.wants(&o) {
                        print_change(&o, format, table, &mut headers)?;
                        cache.insert(key(&o), *o);
                    }
                }
                Some(Ok(WatchEvent::Deleted {
                    kind,
                    name,
                    revision: r,
                })) => {
                    revision = revision.max(r);
                    if let Some(last) = cache.remove(&(kind, name)) {
                        print_change(&last, format, table, &mut headers)?;
                    }
                }
                // A value written without the CLI that is not an object: say so, go on.
                Some(Ok(WatchEvent::Invalid(bad))) => {
                    output::note(format_args!(
                        "warning: skipped {}: {}",
                        bad.key, bad.message
                    ));
                }
                // Fell behind compaction, or lost the connection: list again and go on.
                Some(Ok(WatchEvent::Compacted(_))) | Some(Err(_)) | None => {
                    let list = loop {
                        match query.list(store).await {
                            Ok(l) => break l,
                            Err(e) if e.is_retryable() => {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    };
                    revision = list.revision;
                    let fresh: Seen = query
                        .select(&list)
                        .into_iter()
                        .map(|o| (key(&o), o))
                        .collect();
                    for (k, o) in &fresh {
                        if cache.get(k) != Some(o) {
                            print_change(o, format, table, &mut headers)?;
                        }
                    }
                    cache = fresh;
                    break;
                }
            }
        }
    }
}
