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

    let running_state = |t: &&&TaskInfo| t.desired_state == "running" && t.state == "running";
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
        );
        assert!(!c.ready);
        assert_eq!(c.reason, "UpdatePaused");
    }
}
