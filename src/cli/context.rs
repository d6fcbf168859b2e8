//! Global options, resolved once: flag, then environment variable, then default.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::store::{DEFAULT_PREFIX, EtcdConfig, EtcdTls, Store};
use crate::swarm::{DockerConfig, SwarmClient};

use super::CliError;

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// etcd endpoints, comma-separated (host:port or URLs).
    #[arg(
        long,
        global = true,
        env = "KARGO_ETCD_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub etcd_endpoints: Vec<String>,
    /// etcd user, when etcd has auth enabled.
    #[arg(long, global = true, env = "KARGO_ETCD_USER")]
    pub etcd_user: Option<String>,
    /// etcd password.
    #[arg(
        long,
        global = true,
        env = "KARGO_ETCD_PASSWORD",
        hide_env_values = true
    )]
    pub etcd_password: Option<String>,
    /// CA certificate (PEM) that signed etcd's server certificate; turns on TLS.
    #[arg(long, global = true, env = "KARGO_ETCD_CACERT", value_name = "FILE")]
    pub etcd_cacert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client-certificate authentication.
    #[arg(
        long,
        global = true,
        env = "KARGO_ETCD_CERT",
        value_name = "FILE",
        requires = "etcd_key"
    )]
    pub etcd_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(
        long,
        global = true,
        env = "KARGO_ETCD_KEY",
        value_name = "FILE",
        requires = "etcd_cert"
    )]
    pub etcd_key: Option<PathBuf>,
    /// Key prefix of this installation in etcd; also labels its Swarm objects.
    #[arg(long, global = true, env = "KARGO_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// Swarm manager endpoints, comma-separated (unix:///path, tcp://host:port); kargo uses
    /// one and moves to the next when it is down, not a manager, or sees no leader.
    /// Default: DOCKER_HOST (one address), else the local socket.
    #[arg(
        long = "docker-host",
        global = true,
        env = "KARGO_DOCKER_HOSTS",
        value_delimiter = ',',
        value_name = "HOSTS"
    )]
    pub docker_hosts: Vec<String>,
    /// Speak TLS to tcp:// endpoints and verify the daemon with the CA of --docker-cert-path.
    #[arg(
        long,
        global = true,
        env = "DOCKER_TLS_VERIFY",
        value_parser = parse_flag_env,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub docker_tls_verify: Option<bool>,
    /// Directory with ca.pem, cert.pem and key.pem for TLS (default: ~/.docker).
    #[arg(long, global = true, env = "DOCKER_CERT_PATH", value_name = "DIR")]
    pub docker_cert_path: Option<PathBuf>,
    /// More logs on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// How to reach etcd, from the flags (reads the TLS files named there).
    pub fn etcd_config(&self) -> Result<EtcdConfig, CliError> {
        let mut config = EtcdConfig::new(self.etcd_endpoints.clone());
        config.request_timeout = Some(Duration::from_secs(5));
        if let Some(user) = &self.etcd_user {
            config.credentials =
                Some((user.clone(), self.etcd_password.clone().unwrap_or_default()));
        }
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| CliError::io(&format!("--{flag} {}", path.display()), e))
        };
        if self.etcd_cacert.is_some() || self.etcd_cert.is_some() {
            let ca_pem = match &self.etcd_cacert {
                Some(p) => Some(read("etcd-cacert", p)?),
                None => None,
            };
            let identity = match (&self.etcd_cert, &self.etcd_key) {
                (Some(c), Some(k)) => Some((read("etcd-cert", c)?, read("etcd-key", k)?)),
                _ => None,
            };
            config.tls = Some(EtcdTls { ca_pem, identity });
        }
        Ok(config)
    }

    /// Connects to etcd, failing within a few seconds with the endpoint named.
    pub async fn store(&self) -> Result<Store, CliError> {
        Store::connect(&self.etcd_config()?, &self.prefix)
            .await
            .map_err(|e| CliError::etcd_connect(e, &self.etcd_endpoints))
    }

    /// How to reach the Swarm's managers, from the flags (no I/O).
    pub fn docker_config(&self) -> DockerConfig {
        let tls = self.docker_tls_verify.unwrap_or(false).then(|| {
            self.docker_cert_path.clone().unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_default();
                PathBuf::from(home).join(".docker")
            })
        });
        DockerConfig {
            hosts: self.docker_hosts.clone(),
            tls,
        }
    }

    /// Connects to Docker (the first manager endpoint that answers).
    pub async fn swarm(&self) -> Result<SwarmClient, CliError> {
        Ok(SwarmClient::connect_with(&self.docker_config()).await?)
    }
}

/// Reads a switch given as a flag value or an environment variable the way the docker CLI
/// reads `DOCKER_TLS_VERIFY`: any value but empty, `0` or `false` turns it on.
fn parse_flag_env(s: &str) -> Result<bool, String> {
    Ok(!matches!(s.trim(), "" | "0" | "false"))
}

/// Logs go to stderr through tracing; data goes to stdout. `daemon`: a long-running
/// process (the controller), which logs what it does at info by default, as controllers
/// do; commands log only warnings unless -v. Colours only on a terminal (a log file or
/// journald gets plain text).
pub fn init_logging(g: &GlobalArgs, daemon: bool) {
    let default = match (g.verbose, daemon) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses a duration flag such as `30s` or `5m`; a bare `0` is zero, as in Go and kubectl.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let nanos = crate::api::quantity::parse_duration_nanos(s).map_err(|e| e.to_string())?;
    // The parser only builds non-negative values; refuse rather than wrap if that changes.
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("{s:?} is negative"))
}

/// Parses a duration flag that must not be zero (a period or a lease: zero would spin or
/// panic the task that waits on it).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be greater than 0"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_a_duration_but_not_a_positive_one() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_positive_duration("0s"),
            Err("\"0s\" must be greater than 0".to_string())
        );
        assert_eq!(
            parse_positive_duration("0"),
            Err("\"0\" must be greater than 0".to_string())
        );
        assert_eq!(parse_positive_duration("1ns"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn a_duration_past_64_bits_is_refused_with_the_largest() {
        assert_eq!(
            parse_duration("9999999999h"),
            Err("duration \"9999999999h\" is too large: at most 2562047h".to_string())
        );
    }
}
