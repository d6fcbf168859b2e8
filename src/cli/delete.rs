//! `kargo delete`: remove objects (their Swarm objects go first, by finalizer).

use crate::api::Kind;
use crate::store::{Deleted, StoreError};

use super::{CliError, ExitStatus, GlobalArgs};

/// Delete objects. Stacks and Services keep a finalizer until the controller has removed their Swarm objects.
///
/// Example: kargo delete service web
#[derive(Debug, clap::Args)]
pub struct Args {
    /// configuration, environment, stack or service.
    kind: Kind,
    /// Names to delete.
    #[arg(required = true)]
    names: Vec<String>,
    /// Succeed when an object does not exist.
    #[arg(long)]
    ignore_not_found: bool,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    let mut status = ExitStatus::Success;
    for name in &args.names {
        match store.delete(args.kind, name, None, None).await {
            Ok(Deleted::Gone) => println!("{} {name:?} deleted", args.kind.singular()),
            Ok(Deleted::Finalizing(_)) => println!(
                "{} {name:?} deleted (its Swarm objects are being removed)",
                args.kind.singular()
            ),
            Err(StoreError::NotFound { .. }) if args.ignore_not_found => {}
            Err(e @ StoreError::NotFound { .. }) => {
                eprintln!("error: {e}");
                status = ExitStatus::Failure;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(status)
}
