//! A real multi-member etcd cluster on loopback ports, started by the test itself.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One member process.
pub struct Member {
    /// Member name.
    pub name: String,
    /// Client URL.
    pub client: String,
    peer: String,
    data: std::path::PathBuf,
    child: Option<Child>,
    cluster: String,
}

/// A cluster of members; all processes are killed when dropped.
pub struct EtcdCluster {
    /// The members.
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members on ports from `base_port` (two per member) and waits until healthy.
    pub fn start(n: usize, base_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let specs: Vec<(String, String, String)> = (0..n)
            .map(|i| {
                let client = base_port + 2 * i as u16;
                (
                    format!("m{i}"),
                    format!("http://127.0.0.1:{client}"),
                    format!("http://127.0.0.1:{}", client + 1),
                )
            })
            .collect();
        let cluster = specs
            .iter()
            .map(|(name, _, peer)| format!("{name}={peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Member> = specs
            .into_iter()
            .map(|(name, client, peer)| Member {
                data: dir.path().join(&name),
                name,
                client,
                peer,
                child: None,
                cluster: cluster.clone(),
            })
            .collect();
        for m in &mut members {
            m.start("new");
        }
        let c = EtcdCluster { members, _dir: dir };
        c.wait_healthy(Duration::from_secs(30));
        c
    }

    /// Client endpoints, comma-separated.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client.trim_start_matches("http://").to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running member answers.
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            loop {
                let ok = Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args([
                        "--endpoints",
                        &m.client,
                        "--dial-timeout=1s",
                        "--command-timeout=2s",
                        "endpoint",
                        "health",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {} not healthy (is etcd installed? run scripts/test.sh)",
                    m.name
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Kills a member (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts a killed member with its data.
    pub fn restart(&mut self, i: usize) {
        self.members[i].start("existing");
    }
}

impl Member {
    fn start(&mut self, state: &str) {
        let log = std::fs::File::create(self.data.with_extension("log")).expect("log");
        let child = Command::new("etcd")
            .args(["--name", &self.name])
            .args(["--data-dir", &self.data.to_string_lossy()])
            .args([
                "--listen-client-urls",
                &self.client,
                "--advertise-client-urls",
                &self.client,
            ])
            .args([
                "--listen-peer-urls",
                &self.peer,
                "--initial-advertise-peer-urls",
                &self.peer,
            ])
            .args([
                "--initial-cluster",
                &self.cluster,
                "--initial-cluster-state",
                state,
            ])
            .args(["--initial-cluster-token", "kargo-test"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
