//! `kargo controller`: run the operator until SIGTERM or SIGINT.

use std::time::Duration;

use crate::controller::{Controller, ControllerOptions};

use super::context::parse_duration;
use super::{CliError, ExitStatus, GlobalArgs};

/// Run the operator: watch etcd, reconcile Stacks onto Swarm, write status back.
///
/// A pass in flight finishes before the process exits on SIGTERM or SIGINT.
///
/// Example: kargo controller --configuration main --resync-period 30s
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Configuration in force.
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Full resync period (catches hand changes in Swarm).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    resync_period: Duration,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    let store = g.store().await?;
    let swarm = g.swarm().await?;
    let options = ControllerOptions {
        configuration: args.configuration,
        resync: args.resync_period,
        ..ControllerOptions::default()
    };
    let controller = Controller::new(store, swarm, options);
    controller.run(shutdown_signal()).await?;
    Ok(ExitStatus::Success)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
