//! Stopping and starting the machine's one dockerd (every Docker test shares it), and a
//! guard that brings it and the Swarm back even when the test fails half-way.

use std::process::Command;
use std::time::{Duration, Instant};

/// The pid file dockerd writes for itself.
const PID_FILE: &str = "/var/run/docker.pid";

/// Stops dockerd (SIGTERM to the pid it recorded) and waits until it has really exited:
/// it stops its containers first, which takes a few seconds.
pub fn stop(timeout: Duration) {
    let pid = std::fs::read_to_string(PID_FILE).unwrap_or_default();
    let pid = pid.trim();
    assert!(
        pid.parse::<u32>().is_ok(),
        "no dockerd pid in {PID_FILE} (run scripts/test.sh)"
    );
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let deadline = Instant::now() + timeout;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "dockerd {pid} still running {timeout:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs scripts/setup.sh, which starts what is not running (idempotent).
fn setup() -> std::io::Result<std::process::Output> {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup.sh")).output()
}

/// Starts dockerd and the one-node Swarm the way the test command does (idempotent).
pub fn start() {
    let setup = setup().expect("scripts/setup.sh");
    assert!(
        setup.status.success(),
        "scripts/setup.sh failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
}

/// Whether dockerd answers and its node is an active Swarm manager.
pub fn swarm_active() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "active")
        .unwrap_or(false)
}

/// Held by a test that stops dockerd: when dropped (the test ended, or panicked) it starts
/// dockerd and the Swarm again if they are not both up, so later tests find them.
pub struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if !swarm_active() {
            let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup.sh")).status();
        }
    }
}
