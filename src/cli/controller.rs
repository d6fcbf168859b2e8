//! `kargo controller`: run the operator until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use crate::controller::{Controller, ControllerOptions, ElectionOptions};

use super::context::parse_positive_duration;
use super::{CliError, ExitStatus, GlobalArgs};

/// Run the operator: watch etcd, reconcile Stacks onto Swarm, write status back.
///
/// Run several replicas with --leader-elect: one reconciles, the others keep their
/// cache warm and take over within the lease TTL when it dies. On SIGTERM or SIGINT
/// reconciles in flight finish and a leader resigns, so failover is immediate.
///
/// Example: kargo controller --leader-elect --metrics-addr 127.0.0.1:9464
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The Configuration in force.
    #[arg(long, default_value = "main", env = "KARGO_CONFIGURATION")]
    configuration: String,
    /// Full resync period (catches hand changes in Swarm and task state); more than 0.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    resync_period: Duration,
    /// Stacks reconciled at once.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Serve /healthz, /readyz and /metrics here (off unless given). A port alone (`9464`
    /// or `:9464`) listens on the loopback address; name an address to listen elsewhere.
    #[arg(long, env = "KARGO_METRICS_ADDR", value_parser = parse_metrics_addr)]
    metrics_addr: Option<SocketAddr>,
    /// Elect one leader among replicas sharing the etcd prefix.
    #[arg(long)]
    leader_elect: bool,
    /// Leader lease TTL: a dead leader is replaced within about this long; more than 0.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    lease_ttl: Duration,
    /// This replica's name in the election (default: hostname and pid).
    #[arg(long)]
    identity: Option<String>,
    /// Run one full reconcile pass, print what it did as JSON, and exit (0 when all is
    /// Ready, 1 otherwise): for scripts and benchmarks. No election, no metrics server.
    #[arg(long)]
    once: bool,
    /// The private key file made by `kargo keys create`: opens sealed values, in memory
    /// only. Without it the controller changes nothing in Swarm while any value is sealed.
    #[arg(long, env = "KARGO_SECRET_KEY_FILE", value_name = "FILE")]
    secret_key_file: Option<std::path::PathBuf>,
    /// The only folder registry password files (`passwordFrom.file` of the Environment) are
    /// read from; without it no file is read. Environment variables named as passwords
    /// must start with KARGO_REGISTRY_. (Whoever can apply writes the Environment: neither
    /// may reach this host's other files or variables.)
    #[arg(long, env = "KARGO_REGISTRY_SECRETS_DIR", value_name = "DIR")]
    registry_secrets_dir: Option<std::path::PathBuf>,
}

pub(super) async fn run(g: &GlobalArgs, args: Args) -> Result<ExitStatus, CliError> {
    if crate::controller::memory::return_freed_pages_promptly() {
        tracing::debug!("mimalloc returns freed pages at once (purge delay 0)");
    }
    let store = g.store().await?;
    let swarm = g.swarm().await?;
    let identity = args.identity.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let etcd = g.etcd_config()?;
    let keys = match &args.secret_key_file {
        Some(path) => Some(std::sync::Arc::new(
            crate::secrets::Keyring::read(path).map_err(|e| CliError::usage(e.to_string()))?,
        )),
        None => None,
    };
    let options = ControllerOptions {
        keys,
        registry_secrets_dir: args.registry_secrets_dir,
        configuration: args.configuration,
        resync: args.resync_period,
        workers: args.workers,
        metrics_addr: args.metrics_addr,
        // Without --leader-elect the controller still takes the election, at once or not
        // at all: a second lone controller on the same prefix exits instead of fighting.
        election: Some(ElectionOptions {
            etcd,
            ttl: args.lease_ttl,
            identity,
            wait: args.leader_elect,
        }),
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        prefix = %g.prefix,
        etcd = %g.etcd_endpoints.join(","),
        docker = %if g.docker_hosts.is_empty() { "the local socket".to_string() } else { g.docker_hosts.join(",") },
        configuration = %options.configuration,
        workers = options.workers,
        resync = ?options.resync,
        leader_elect = args.leader_elect,
        "kargo controller starting"
    );
    let controller = Controller::new(store, swarm, options);
    if args.once {
        let started = std::time::Instant::now();
        let report = controller.pass().await?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        super::output::out(format_args!(
            "{}",
            serde_json::json!({
                "allReady": report.all_ready,
                "dockerWrites": report.docker_writes,
                "etcdWrites": report.etcd_writes,
                "millis": (millis * 10.0).round() / 10.0,
            })
        ))?;
        return Ok(if report.all_ready {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        });
    }
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

/// `--metrics-addr`: an address, or a port alone (`9464`, `:9464`) on the loopback
/// address, so the endpoint is never exposed beyond the host unless an address says so.
fn parse_metrics_addr(value: &str) -> Result<SocketAddr, String> {
    let port = value.strip_prefix(':').unwrap_or(value);
    if let Ok(port) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is neither an address such as 127.0.0.1:9464 nor a port"))
}

#[cfg(test)]
mod metrics_addr_tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_metrics_endpoint_is_off_by_default_and_a_port_alone_is_loopback() {
        let off = Wrapper::try_parse_from(["x"]).expect("parse");
        if std::env::var_os("KARGO_METRICS_ADDR").is_none() {
            assert_eq!(off.args.metrics_addr, None, "opt-in");
        }
        for port in ["9464", ":9464"] {
            let w = Wrapper::try_parse_from(["x", "--metrics-addr", port]).expect("parse");
            assert_eq!(
                w.args.metrics_addr,
                Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
            );
        }
        let all = Wrapper::try_parse_from(["x", "--metrics-addr", "0.0.0.0:9464"]).expect("parse");
        assert_eq!(
            all.args.metrics_addr,
            Some(SocketAddr::from(([0, 0, 0, 0], 9464)))
        );
        assert!(Wrapper::try_parse_from(["x", "--metrics-addr", "host:port"]).is_err());
    }
}
