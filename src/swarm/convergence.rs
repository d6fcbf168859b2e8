//! Whether a service has converged, by the Docker CLI's rule (docs/design.md, "The controller").

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::DeployMode;
use crate::api::conditions::reasons;

use super::compare::{comparable, covers};
use super::docker::{LiveService, TaskInfo};

/// How far a service is from its desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Convergence {
    /// Tasks of the current spec running (completed, for jobs), one per slot or node.
    pub running: u64,
    /// Tasks wanted.
    pub desired: u64,
    /// True when the service counts as Ready.
    pub ready: bool,
    /// CamelCase reason for the Ready condition.
    pub reason: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// Recent task errors, newest first.
    pub errors: Vec<String>,
}

const MAX_ERRORS: usize = 3;

/// How long a task must have been running to count as running: a container that exits at
/// once is seen `running` for a moment, and a service of such tasks must never look Ready
/// (the docker CLI waits 5 s for the same reason before it says a service converged).
pub const STABLE_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// Whether a running task has run for [`STABLE_FOR`] at `now`, by its status time. A time
/// that cannot be read, or one ahead of `now` (a manager's clock ahead of this one), counts
/// as long enough: the rule may delay Ready, never withhold it.
fn stable(task: &TaskInfo, now: chrono::DateTime<chrono::Utc>) -> bool {
    let Some(at) = task
        .timestamp
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return true;
    };
    let ran = now.signed_duration_since(at.with_timezone(&chrono::Utc));
    ran >= STABLE_FOR || ran < chrono::TimeDelta::zero()
}

/// Assesses a live service and its tasks. Only tasks made from the desired spec count
/// (`desired` is the service spec kargo sends, with IDs resolved), so a service
/// mid-update is not Ready while old tasks still run. Tasks are compared with what kargo
/// sets, not with the live template: the engine adds defaults to the latter only.
pub fn assess(
    live: &LiveService,
    desired: &Value,
    tasks: &[TaskInfo],
    mode: DeployMode,
    replicas: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> Convergence {
    let template = comparable(desired)
        .get("TaskTemplate")
        .cloned()
        .unwrap_or(Value::Null);
    let current: Vec<&TaskInfo> = tasks
        .iter()
        .filter(|t| covers(&t.spec, &template))
        .collect();
    let errors: Vec<String> = tasks
        .iter()
        .filter_map(|t| {
            let err = t.error.as_ref()?;
            let short: String = t.id.chars().take(12).collect();
            Some(format!("task {short}: {err}"))
        })
        .take(MAX_ERRORS)
        .collect();

    let running_state =
        |t: &&&TaskInfo| t.desired_state == "running" && t.state == "running" && stable(t, now);
    let (running, desired) = match mode {
        DeployMode::Replicated => {
            let slots: BTreeSet<i64> = current
                .iter()
                .filter(running_state)
                .filter_map(|t| t.slot)
                .collect();
            (slots.len() as u64, replicas)
        }
        DeployMode::Global => {
            let wanted: BTreeSet<&str> = current
                .iter()
                .filter(|t| t.desired_state == "running")
                .filter_map(|t| t.node_id.as_deref())
                .collect();
            let up: BTreeSet<&str> = current
                .iter()
                .filter(running_state)
                .filter_map(|t| t.node_id.as_deref())
                .collect();
            (up.len() as u64, wanted.len().max(1) as u64)
        }
        DeployMode::ReplicatedJob | DeployMode::GlobalJob => {
            let done = current.iter().filter(|t| t.state == "complete").count() as u64;
            let want = if mode == DeployMode::ReplicatedJob {
                replicas
            } else {
                let nodes: BTreeSet<&str> = current
                    .iter()
                    .filter_map(|t| t.node_id.as_deref())
                    .collect();
                nodes.len().max(1) as u64
            };
            (done, want)
        }
    };

    let update = live.update_state.as_deref().unwrap_or("");
    let update_message = live.update_message.clone().unwrap_or_default();
    let (ready, reason, message) = match update {
        "paused" | "rollback_paused" => (
            false,
            reasons::UPDATE_PAUSED,
            format!("Swarm paused the update: {update_message}"),
        ),
        "rollback_started" | "rollback_completed" => (
            false,
            reasons::ROLLED_BACK,
            format!("Swarm rolled the update back: {update_message}"),
        ),
        "updating" => (
            false,
            reasons::PROGRESSING,
            format!("update in progress: {running}/{desired} tasks"),
        ),
        _ if running >= desired && desired > 0
            || (desired == 0 && running == 0 && mode == DeployMode::Replicated) =>
        {
            let word = if matches!(mode, DeployMode::ReplicatedJob | DeployMode::GlobalJob) {
                "completed"
            } else {
                "running"
            };
            (
                true,
                reasons::CONVERGED,
                format!("{running}/{desired} tasks {word}"),
            )
        }
        _ if !errors.is_empty() => (
            false,
            reasons::TASKS_FAILING,
            format!("{running}/{desired} tasks running; {}", errors[0]),
        ),
        _ => (
            false,
            reasons::TASKS_PENDING,
            format!("{running}/{desired} tasks running"),
        ),
    };
    let message = if !ready && reason != reasons::TASKS_FAILING && !errors.is_empty() {
        format!("{message}; {}", errors[0])
    } else {
        message
    };
    Convergence {
        running,
        desired,
        ready,
        reason,
        message,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(image: &str) -> Value {
        json!({"TaskTemplate": {"ContainerSpec": {"Image": image}}})
    }

    fn live(image: &str, update: Option<&str>) -> LiveService {
        LiveService {
            id: "svc".into(),
            name: "kargo-a_b".into(),
            version: 10,
            spec: json!({"TaskTemplate": {"ContainerSpec": {"Image": image}}}),
            labels: Default::default(),
            update_state: update.map(str::to_string),
            update_message: Some("update paused due to failure".into()),
        }
    }

    fn task(slot: i64, image: &str, state: &str, err: Option<&str>) -> TaskInfo {
        TaskInfo {
            id: format!("t{slot}{state}"),
            slot: Some(slot),
            node_id: Some("n1".into()),
            desired_state: "running".into(),
            state: state.into(),
            error: err.map(str::to_string),
            message: None,
            timestamp: None,
            spec: json!({"ContainerSpec": {"Image": image}, "ForceUpdate": 0}),
        }
    }

    #[test]
    fn ready_when_every_slot_runs_the_current_spec() {
        let tasks = [
            task(1, "a:2", "running", None),
            task(2, "a:2", "running", None),
        ];
        let c = assess(
            &live("a:2", None),
            &desired("a:2"),
            &tasks,
            DeployMode::Replicated,
            2,
            chrono::Utc::now(),
        );
        assert!(c.ready, "{c:?}");
        assert_eq!((c.running, c.desired), (2, 2));
    }

    #[test]
    fn old_spec_tasks_do_not_count() {
        let tasks = [
            task(1, "a:1", "running", None),
            task(2, "a:2", "running", None),
        ];
        let c = assess(
            &live("a:2", None),
            &desired("a:2"),
            &tasks,
            DeployMode::Replicated,
            2,
            chrono::Utc::now(),
        );
        assert!(!c.ready);
        assert_eq!(c.running, 1);
    }

    #[test]
    fn task_errors_reach_the_message() {
        let tasks = [task(1, "a:2", "rejected", Some("No such image: a:2"))];
        let c = assess(
            &live("a:2", None),
            &desired("a:2"),
            &tasks,
            DeployMode::Replicated,
            1,
            chrono::Utc::now(),
        );
        assert!(!c.ready);
        assert_eq!(c.reason, "TasksFailing");
        assert!(c.message.contains("No such image"), "{}", c.message);
    }

    #[test]
    fn a_paused_update_is_not_ready() {
        let tasks = [task(1, "a:2", "running", None)];
        let c = assess(
            &live("a:2", Some("paused")),
            &desired("a:2"),
            &tasks,
            DeployMode::Replicated,
            1,
            chrono::Utc::now(),
        );
        assert!(!c.ready);
        assert_eq!(c.reason, "UpdatePaused");
    }

    #[test]
    fn a_task_running_for_less_than_a_second_does_not_count() {
        let now = chrono::Utc::now();
        let at = |ago_ms: i64| {
            let mut t = task(1, "app:1", "running", None);
            t.timestamp = Some((now - chrono::TimeDelta::milliseconds(ago_ms)).to_rfc3339());
            t
        };
        let ready = |t: TaskInfo| {
            assess(
                &live("app:1", None),
                &desired("app:1"),
                &[t],
                DeployMode::Replicated,
                1,
                now,
            )
            .ready
        };
        assert!(
            !ready(at(20)),
            "a container that may exit at once is not Ready yet"
        );
        assert!(ready(at(1500)), "running for 1.5 s");
        assert!(
            ready(at(-3000)),
            "a manager clock ahead never withholds Ready"
        );
    }
}
