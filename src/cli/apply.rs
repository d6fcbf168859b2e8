//! `kargo apply`: create objects or bring the manifests' changes to them (three-way
//! merge through the last-applied annotation), optionally pruning an apply set and
//! waiting for Ready.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::{DynamicObject, Kind};
use crate::store::{ApplySet, ObjectRef, Store, StoreError};

use super::context::parse_duration;
use super::output::{self, OutputFormat};
use super::wait::{Targets, WaitOptions, Want, wait_for};
use super::{CliError, ExitStatus, GlobalArgs, manifests, planning};

const EXAMPLES: &str = "Examples:
  kargo apply -f manifests/ -R
  cat web.yaml | kargo apply -f -
  kargo apply -f manifests/ --dry-run=server
  kargo apply -f manifests/ --prune --applyset production
  kargo apply -f stacks.yaml --wait --timeout 5m";

/// Create or update objects from manifest files: created, configured or unchanged.
///
/// Every document is checked first; when any is invalid nothing is written. Then, with
/// what is stored, the checks the controller runs (merge with the Configuration and
/// Environment in force, `${VAR}` interpolation, the merged schema, rendering): a problem
/// the changes bring is refused with the message the controller would put in the status,
/// and nothing is written (exit 1). A reference to an object not stored yet (a Stack's
/// Service, an Environment's Stack) is only a warning, so files can be applied in any
/// order; so is a problem that was already there before this apply. Only what
/// changed in the file since the last apply is written (kargo.dev/last-applied-configuration
/// remembers it), so a `kargo scale` or a field nobody's file names survives a re-apply,
/// and a field removed from the file is removed from the object. A concurrent change to
/// another field is kept; to the same field, it is reported as a conflict (exit 1).
/// Exit codes: 0 applied, 1 refused (nothing written), an object failed (the others were
/// applied) or a wait failed, 2 usage, unreadable input or unreachable etcd.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Files, folders or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Recurse into sub-folders.
    #[arg(short = 'R', long)]
    recursive: bool,
    /// Write nothing: `client` computes the result against what is stored; `server` also
    /// runs the controller's checks on the merged configuration, as every real apply does.
    #[arg(long, value_name = "client|server", num_args = 0..=1, default_missing_value = "client",
          value_parser = ["none", "client", "server"], default_value = "none")]
    dry_run: String,
    /// Delete the objects an earlier apply of the same --applyset made that the files no longer hold.
    #[arg(long, requires = "applyset")]
    prune: bool,
    /// The apply set: a name whose membership kargo records in etcd.
    #[arg(long, value_name = "NAME")]
    applyset: Option<String>,
    /// Let --prune delete the Configuration in force or its Environment.
    #[arg(long)]
    force: bool,
    /// The Configuration in force (for --dry-run=server and the --prune guard).
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Wait until every applied object is Ready (or not deployed) at the rollout revision
    /// the apply asked for, showing progress (see `kargo rollout status`).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
    /// With --wait: no progress while waiting.
    #[arg(short, long)]
    quiet: bool,
    /// Print the resulting objects instead of a line each: yaml, json, name or jsonpath=...
    #[arg(short, long, value_parser = OutputFormat::parse, add = super::complete::output_formats())]
    output: Option<OutputFormat>,
}

fn refs_of(objects: &[DynamicObject]) -> BTreeSet<ObjectRef> {
    objects
        .iter()
        .map(|o| ObjectRef {
            kind: o.kind,
            name: o.metadata.name.clone(),
        })
        .collect()
}

fn valid_set_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Records `add` in the set before anything is applied, so an interrupted apply still
/// knows what to prune next time. Returns the set's members before and its revision.
async fn record_members(
    store: &Store,
    name: &str,
    add: &BTreeSet<ObjectRef>,
) -> Result<(BTreeSet<ObjectRef>, i64), CliError> {
    let (old, rev) = match store.applyset(name).await? {
        Some((set, rev)) => (set.members, Some(rev)),
        None => (BTreeSet::new(), None),
    };
    let set = ApplySet {
        name: name.to_string(),
        members: old.union(add).cloned().collect(),
        updated: String::new(),
    };
    let rev = store.put_applyset(&set, rev).await?;
    Ok((old, rev))
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let mut objects = manifests::load(&args.files, args.recursive)?;
    if let Some(name) = &args.applyset
        && !valid_set_name(name)
    {
        return Err(CliError::usage(format!(
            "--applyset {name:?}: use lowercase letters, digits and '-' (at most 63)"
        )));
    }
    let dry_run = args.dry_run != "none";
    let suffix = match args.dry_run.as_str() {
        "client" => " (dry run)",
        "server" => " (server dry run)",
        _ => "",
    };
    let store = g.store().await?;
    super::seal::seal_before_apply(&store, &mut objects).await?;
    let wanted = refs_of(&objects);

    // Every object is merged with what is stored first, and the result checked as the
    // controller will check it; a refusal writes nothing (not even the apply set).
    let mut prepared = Vec::with_capacity(objects.len());
    for obj in &objects {
        match store.prepare_apply(obj).await {
            Err(e @ StoreError::Kv(_)) => return Err(e.into()),
            other => prepared.push((obj, other)),
        }
    }
    let previews: Vec<DynamicObject> = prepared
        .iter()
        .filter_map(|(_, p)| p.as_ref().ok())
        .filter_map(|p| p.preview().ok())
        .map(|r| r.object)
        .collect();
    // A client dry run shows only what would be sent, as kubectl's does.
    let stored = store.list_all().await?;
    let check = if args.dry_run == "client" {
        planning::ApplyCheck::default()
    } else {
        planning::check_apply(
            &stored.items,
            &previews,
            &args.configuration,
            store.prefix(),
        )
    };
    for w in &check.warnings {
        output::note(format_args!("warning: {w}"));
    }
    if !check.refusals.is_empty() {
        for r in &check.refusals {
            output::note(format_args!("error: {r}"));
        }
        return Err(CliError::failure(format!(
            "{} problem(s) the controller would report; nothing was written",
            check.refusals.len()
        )));
    }
    // The policy refuses before anything is written, a Service no Stack lists yet too
    // (docs/security.md, "Policy").
    let refused =
        planning::policy_refusals(&stored.items, &objects, &args.configuration, store.prefix());
    if !refused.is_empty() {
        for r in &refused {
            output::note(format_args!("error: {r}"));
        }
        return Err(CliError::failure(format!(
            "{} policy refusal(s); nothing was written",
            refused.len()
        )));
    }

    let previous_members = match (&args.applyset, args.prune, dry_run) {
        (Some(set), _, false) => Some(record_members(&store, set, &wanted).await?),
        (Some(set), true, true) => store
            .applyset(set)
            .await?
            .map(|(s, rev)| (s.members, rev))
            .or(Some((BTreeSet::new(), 0))),
        _ => None,
    };

    let mut status = ExitStatus::Success;
    let mut results = Vec::new();
    for (obj, prepared) in prepared {
        let outcome = match prepared {
            Ok(p) if dry_run => p.preview(),
            Ok(p) => store.commit_apply(&p).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(r) => {
                if args.output.is_none() {
                    output::out(format_args!(
                        "{} {}{suffix}",
                        obj.reference(),
                        r.outcome.word()
                    ))?;
                }
                results.push(r.object);
            }
            Err(e @ StoreError::Kv(_)) => return Err(e.into()),
            Err(e) => {
                output::note(format_args!("error: {}: {e}", obj.reference()));
                status = ExitStatus::Failure;
            }
        }
    }

    // A Configuration or Environment that leaves the installation in doubt (the typo
    // `environment: exampel`) is stored — it is the user's to mend — but said at once:
    // the controller keeps everything running and removes nothing until it is mended.
    let touches_config = results
        .iter()
        .any(|o| matches!(o.kind, Kind::Configuration | Kind::Environment));
    if touches_config && let Some(d) = &check.doubt {
        output::note(format_args!(
            "warning: {} ({}): the controller keeps what runs and removes nothing until this is mended",
            d.message, d.reason
        ));
    }

    if let Some(format) = &args.output {
        output::print_objects(&results, format, false, Default::default())?;
    }

    if let (Some(set), true, Some((old, rev))) = (&args.applyset, args.prune, previous_members) {
        if status != ExitStatus::Success {
            output::note("not pruning: some objects failed to apply");
        } else if !prune(&store, &args, set, &old, rev, &wanted, suffix).await? {
            status = ExitStatus::Failure;
        }
    }

    if args.wait && !dry_run && status == ExitStatus::Success {
        let refs: Vec<ObjectRef> = wanted.into_iter().collect();
        wait_for(
            &store,
            &Targets::Refs(refs),
            &Want::Settled,
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
            output::note("all applied objects are Ready");
        }
    }
    Ok(status)
}

/// Deletes the set's old members the files no longer hold, then records the new
/// membership. Returns false when something could not be pruned (it stays recorded).
async fn prune(
    store: &Store,
    args: &Args,
    set: &str,
    old: &BTreeSet<ObjectRef>,
    rev: i64,
    wanted: &BTreeSet<ObjectRef>,
    suffix: &str,
) -> Result<bool, CliError> {
    let dry_run = args.dry_run != "none";
    let protected = manifests::in_force(store, &args.configuration).await?;
    let mut kept = BTreeSet::new();
    let mut ok = true;
    // Referencing kinds go first (services before stacks before environments).
    let mut dropped: Vec<&ObjectRef> = old.difference(wanted).collect();
    dropped.sort_by_key(|r| std::cmp::Reverse(r.kind));
    for r in dropped {
        if protected.contains(r) && !args.force {
            output::note(format_args!(
                "error: {}",
                manifests::refuse_in_force(r, &args.configuration).message
            ));
            kept.insert(r.clone());
            ok = false;
            continue;
        }
        if dry_run {
            if store.get(r.kind, &r.name).await?.is_some() {
                output::out(format_args!("{r} pruned{suffix}"))?;
            }
            continue;
        }
        match store.delete(r.kind, &r.name, None, None).await {
            Ok(_) => output::out(format_args!("{r} pruned"))?,
            Err(StoreError::NotFound { .. }) => {}
            Err(e @ StoreError::Kv(_)) => return Err(e.into()),
            Err(e) => {
                output::note(format_args!("error: pruning {r}: {e}"));
                kept.insert(r.clone());
                ok = false;
            }
        }
    }
    if !dry_run {
        let members: BTreeSet<ObjectRef> = wanted.union(&kept).cloned().collect();
        let record = ApplySet {
            name: set.to_string(),
            members,
            updated: String::new(),
        };
        store.put_applyset(&record, Some(rev)).await?;
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applyset_names_are_dns_labels() {
        assert!(valid_set_name("prod-1"));
        assert!(!valid_set_name("Prod"));
        assert!(!valid_set_name("-a"));
        assert!(!valid_set_name(""));
        assert!(!valid_set_name("a/b"));
    }
}
