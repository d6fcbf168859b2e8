//! `kargo get`: list or show objects, optionally watching for changes.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use crate::api::{DynamicObject, Kind};
use crate::store::{Store, WatchEvent};

use super::output::{self, OutputFormat, TableOptions, print_objects};
use super::selector::Selector;
use super::{CliError, ExitStatus, GlobalArgs, target};

const EXAMPLES: &str = "Examples:
  kargo get services
  kargo get stack apps -o yaml
  kargo get svc -l tier=frontend -o wide --show-labels
  kargo get svc -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'
  kargo get stacks -w";

/// Show objects of a kind as a table, YAML, JSON, names or a JSONPath template.
///
/// Services show STACK, IMAGE, REPLICAS (running/desired), READY and AGE; stacks show
/// SERVICES (ready/total), READY and AGE. `-w` prints a line per change until Ctrl-C.
/// Exit codes: 0 shown, 1 a named object does not exist, 2 usage or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A kind (configuration, environment, stack, service; plurals and svc, st, env, cfg
    /// work) and names, or KIND/NAME.
    #[arg(required = true, value_name = "KIND [NAME]...")]
    targets: Vec<String>,
    /// Output: table, wide, yaml, json, name, or jsonpath=TEMPLATE.
    #[arg(short, long, default_value = "table", value_parser = OutputFormat::parse)]
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
    kind: Kind,
    names: Vec<String>,
    selector: Selector,
}

impl Query {
    fn wants(&self, o: &DynamicObject) -> bool {
        o.kind == self.kind
            && (self.names.is_empty() || self.names.contains(&o.metadata.name))
            && self.selector.matches(&o.metadata.labels)
    }
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let (kind, names) = target::one_kind(&args.targets)?;
    let query = Query {
        kind,
        names,
        selector: args.selector.clone().unwrap_or_default(),
    };
    let store = g.store().await?;
    let list = store.list(kind).await?;
    let mut status = ExitStatus::Success;
    let objects: Vec<DynamicObject> = list
        .items
        .iter()
        .filter(|o| query.wants(o))
        .cloned()
        .collect();
    for n in &query.names {
        if !objects.iter().any(|o| &o.metadata.name == n) && !args.ignore_not_found {
            output::note(format_args!("error: {kind} {n:?} not found"));
            status = ExitStatus::Failure;
        }
    }
    let table = TableOptions {
        show_labels: args.show_labels,
        no_header: false,
    };
    let mut header_printed = false;
    if !args.watch_only {
        if objects.is_empty() && query.names.is_empty() && args.output.is_table() {
            output::note(format_args!("No {} found.", kind.plural()));
        }
        print_objects(&objects, &args.output, query.names.len() == 1, table)?;
        header_printed = !objects.is_empty();
    }
    if !(args.watch || args.watch_only) {
        return Ok(status);
    }
    let cache: BTreeMap<String, DynamicObject> = objects
        .into_iter()
        .map(|o| (o.metadata.name.clone(), o))
        .collect();
    watch(
        &store,
        &query,
        &args.output,
        table,
        header_printed,
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
    header_printed: &mut bool,
) -> Result<(), CliError> {
    if matches!(format, OutputFormat::Plain(output::Format::Yaml)) {
        output::out("---")?;
    }
    let opts = TableOptions {
        no_header: *header_printed,
        ..table
    };
    print_objects(std::slice::from_ref(o), format, true, opts)?;
    if matches!(format, OutputFormat::JsonPath(_)) {
        output::out("")?;
    }
    *header_printed = true;
    Ok(())
}

async fn watch(
    store: &Store,
    query: &Query,
    format: &OutputFormat,
    table: TableOptions,
    mut header_printed: bool,
    mut cache: BTreeMap<String, DynamicObject>,
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
                        print_change(&o, format, table, &mut header_printed)?;
                        cache.insert(o.metadata.name.clone(), *o);
                    }
                }
                Some(Ok(WatchEvent::Deleted {
                    kind,
                    name,
                    revision: r,
                })) => {
                    revision = revision.max(r);
                    if kind == query.kind
                        && let Some(last) = cache.remove(&name)
                    {
                        print_change(&last, format, table, &mut header_printed)?;
                    }
                }
                // Fell behind compaction, or lost the connection: list again and go on.
                Some(Ok(WatchEvent::Compacted(_))) | Some(Err(_)) | None => {
                    let list = loop {
                        match store.list(query.kind).await {
                            Ok(l) => break l,
                            Err(e) if e.is_retryable() => {
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    };
                    revision = list.revision;
                    let fresh: BTreeMap<String, DynamicObject> = list
                        .items
                        .into_iter()
                        .filter(|o| query.wants(o))
                        .map(|o| (o.metadata.name.clone(), o))
                        .collect();
                    for (name, o) in &fresh {
                        if cache.get(name) != Some(o) {
                            print_change(o, format, table, &mut header_printed)?;
                        }
                    }
                    cache = fresh;
                    break;
                }
            }
        }
    }
}
