//! `kargo get`: list or show objects.

use crate::api::Kind;

use super::output::{Format, print_objects};
use super::{CliError, ExitStatus, GlobalArgs};

/// Show objects of a kind, as a table or as YAML/JSON.
///
/// Example: kargo get services; kargo get stack apps -o yaml
#[derive(Debug, clap::Args)]
pub struct Args {
    /// configuration, environment, stack or service (plurals and short names work: svc, st, env, cfg).
    kind: Kind,
    /// Names to show (default: all of that kind).
    names: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    let objects = if args.names.is_empty() {
        store.list(args.kind).await?.items
    } else {
        let mut found = Vec::new();
        for name in &args.names {
            match store.get(args.kind, name).await? {
                Some(o) => found.push(o),
                None => {
                    return Err(CliError::failure(format!(
                        "{} {name:?} not found",
                        args.kind
                    )));
                }
            }
        }
        found
    };
    if objects.is_empty() && matches!(args.output, Format::Table | Format::Wide) {
        eprintln!("No {} found.", args.kind.plural());
        return Ok(ExitStatus::Success);
    }
    print_objects(&objects, args.output, args.names.len() == 1)
        .map_err(|e| CliError::io("writing output", e))?;
    Ok(ExitStatus::Success)
}
