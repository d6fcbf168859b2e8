//! `kargo delete`: remove objects; their Swarm objects go first (by finalizer), or stay
//! unlabelled with `--cascade=orphan`.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::annotations::CASCADE_ANNOTATION;
use crate::store::{Deleted, ObjectRef, StoreError};

use super::context::parse_duration;
use super::output;
use super::selector::Selector;
use super::wait::{Targets, WaitOptions, Want, wait_for};
use super::{CliError, ExitStatus, GlobalArgs, manifests, target};

const EXAMPLES: &str = "Examples:
  kargo delete service web
  kargo delete stack/apps service/web --wait
  kargo delete -f manifests/ -R
  kargo delete service -l tier=frontend
  kargo delete stack legacy --cascade=orphan
  kargo delete -f manifests/ --dry-run=client
  kargo delete environment production --force";

/// Delete objects by name, by label, or as named in manifest files.
///
/// Stacks and Services keep a finalizer until the controller has removed their Swarm
/// services; `--cascade=orphan` keeps those services running, with kargo's labels
/// removed. Deleting the Configuration in force or its Environment needs --force.
/// Exit codes: 0 deleted, 1 an object was not found or refused, 2 usage or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A kind and names, or KIND/NAME...
    #[arg(
        value_name = "KIND NAME... | KIND/NAME...",
        required_unless_present = "files",
        add = super::complete::targets()
    )]
    targets: Vec<String>,
    /// Delete the objects these files, folders or `-` name.
    #[arg(short = 'f', long = "filename", conflicts_with = "targets")]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders of -f.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Every object of the kind.
    #[arg(long)]
    all: bool,
    /// Objects of the kind whose labels match.
    #[arg(short = 'l', long, value_parser = str::parse::<Selector>)]
    selector: Option<Selector>,
    /// Succeed when an object does not exist.
    #[arg(long)]
    ignore_not_found: bool,
    /// `foreground`: the Swarm objects are removed; `orphan`: they stay, without kargo's labels.
    #[arg(long, default_value = "foreground", value_parser = ["foreground", "orphan"])]
    cascade: String,
    /// Wait until the objects are gone (their Swarm objects removed first).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
    /// Allow deleting the Configuration in force or its Environment.
    #[arg(long)]
    force: bool,
    /// The Configuration in force.
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Delete nothing: say what would be deleted. Both read what is stored (so a missing
    /// object or one in force is refused as for real); `server` is kubectl's spelling.
    #[arg(long, value_name = "client|server", num_args = 0..=1, default_missing_value = "client",
          value_parser = ["none", "client", "server"], default_value = "none")]
    dry_run: String,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let mut refs: Vec<ObjectRef> = Vec::new();
    let mut whole_kind = None;
    if args.files.is_empty() {
        let (kind, named) = target::refs(&args.targets)?;
        match (kind, named.is_empty(), args.all || args.selector.is_some()) {
            (Some(k), true, true) => whole_kind = Some(k),
            (_, false, true) => {
                return Err(CliError::usage("give names, or --all / -l, not both"));
            }
            (_, true, false) => {
                return Err(CliError::usage(
                    "name the objects to delete (or pass --all or -l with a kind)",
                ));
            }
            _ => refs = named,
        }
    } else {
        refs = manifests::load(&args.files, args.recursive)?
            .iter()
            .rev()
            .map(|o| ObjectRef {
                kind: o.kind,
                name: o.metadata.name.clone(),
            })
            .collect();
    }
    let store = g.store().await?;
    if let Some(kind) = whole_kind {
        let selector = args.selector.clone().unwrap_or_default();
        refs = store
            .list(kind)
            .await?
            .items
            .into_iter()
            .filter(|o| selector.matches(&o.metadata.labels))
            .map(|o| ObjectRef {
                kind,
                name: o.metadata.name,
            })
            .collect();
    }
    let protected = manifests::in_force(&store, &args.configuration).await?;
    let orphan = args.cascade == "orphan";
    let mut status = ExitStatus::Success;
    let mut deleted = Vec::new();
    for r in &refs {
        if protected.contains(r) && !args.force {
            output::note(format_args!(
                "error: {}",
                manifests::refuse_in_force(r, &args.configuration).message
            ));
            status = ExitStatus::Failure;
            continue;
        }
        let kind = r.kind.singular();
        let name = &r.name;
        if args.dry_run != "none" {
            match store.get(r.kind, name).await? {
                Some(_) => {
                    let how = if args.dry_run == "server" {
                        "server dry run"
                    } else {
                        "dry run"
                    };
                    output::out(format_args!("{kind} {name:?} deleted ({how})"))?;
                }
                None if args.ignore_not_found => {}
                None => {
                    output::note(format_args!("error: {} {name:?} not found", r.kind));
                    status = ExitStatus::Failure;
                }
            }
            continue;
        }
        let result = async {
            if orphan {
                store
                    .modify(r.kind, &r.name, None, |o| {
                        o.metadata
                            .annotations
                            .insert(CASCADE_ANNOTATION.to_string(), "orphan".to_string());
                    })
                    .await?;
            }
            store.delete(r.kind, &r.name, None, None).await
        }
        .await;
        match result {
            Ok(Deleted::Gone) => output::out(format_args!("{kind} {name:?} deleted"))?,
            Ok(Deleted::Finalizing(_)) if orphan => output::out(format_args!(
                "{kind} {name:?} deleted (orphan: its Swarm objects stay, without kargo's labels)"
            ))?,
            Ok(Deleted::Finalizing(_)) => output::out(format_args!(
                "{kind} {name:?} deleted (its Swarm objects are being removed)"
            ))?,
            Err(StoreError::NotFound { .. }) if args.ignore_not_found => continue,
            Err(e @ StoreError::Kv(_)) => return Err(e.into()),
            Err(e) => {
                output::note(format_args!("error: {e}"));
                status = ExitStatus::Failure;
                continue;
            }
        }
        deleted.push(r.clone());
    }
    if args.wait && !deleted.is_empty() {
        wait_for(
            &store,
            &Targets::Refs(deleted),
            &Want::Deleted,
            args.timeout,
            WaitOptions::default(),
        )
        .await?;
    }
    Ok(status)
}
