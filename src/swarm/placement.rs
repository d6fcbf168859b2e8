//! Why tasks do not run, in terms of nodes: a task on a node that is down, or tasks that
//! no node may take (none matches the placement constraints, or those that match are
//! down, drained or paused). Pure: the caller lists the nodes.

use serde_json::Value;

use super::docker::TaskInfo;
use super::objects::NodeInfo;

/// A sentence naming the nodes that keep `tasks` of a service with `spec` (Engine API
/// JSON) from running, or `None` when no node is to blame (or every task runs).
/// Constraints kargo cannot evaluate (other than `node.hostname`, `node.role`, `node.id`
/// and `node.labels.*` with `==` or `!=`) count as met.
pub fn node_trouble(spec: &Value, tasks: &[TaskInfo], nodes: &[NodeInfo]) -> Option<String> {
    let stuck: Vec<&TaskInfo> = tasks
        .iter()
        .filter(|t| t.desired_state == "running" && t.state != "running")
        .collect();
    if stuck.is_empty() {
        return None;
    }
    let mut said: Vec<String> = Vec::new();
    for t in &stuck {
        let Some(node) = t
            .node_id
            .as_deref()
            .and_then(|id| nodes.iter().find(|n| n.id == id))
        else {
            continue;
        };
        if !node.takes_tasks() {
            let line = format!("node {} is {}", node.hostname, node.describe_state());
            if !said.contains(&line) {
                said.push(line);
            }
        }
    }
    let unplaced = stuck.iter().any(|t| t.node_id.is_none());
    if unplaced {
        let constraints: Vec<&str> = spec
            .pointer("/TaskTemplate/Placement/Constraints")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let matching: Vec<&NodeInfo> = nodes
            .iter()
            .filter(|n| constraints.iter().all(|c| meets(n, c)))
            .collect();
        if matching.is_empty() {
            said.push(format!(
                "no node matches the placement constraints ({})",
                constraints.join(", ")
            ));
        } else if matching.iter().all(|n| !n.takes_tasks()) {
            let which: Vec<String> = matching
                .iter()
                .map(|n| format!("{} is {}", n.hostname, n.describe_state()))
                .collect();
            let whom = if constraints.is_empty() {
                "every node".to_string()
            } else {
                format!("every node matching {}", constraints.join(", "))
            };
            said.push(format!("{whom} is unavailable: {}", which.join(", ")));
        }
    }
    (!said.is_empty()).then(|| said.join("; "))
}

/// Whether a node meets one constraint; one kargo cannot evaluate counts as met.
fn meets(node: &NodeInfo, constraint: &str) -> bool {
    let (key, want, equal) = match constraint.split_once("!=") {
        Some((k, v)) => (k, v, false),
        None => match constraint.split_once("==") {
            Some((k, v)) => (k, v, true),
            None => return true,
        },
    };
    let (key, want) = (key.trim(), want.trim());
    let have = match key {
        "node.hostname" => Some(node.hostname.as_str()),
        "node.id" => Some(node.id.as_str()),
        "node.role" => Some(node.role.as_str()),
        _ => match key.strip_prefix("node.labels.") {
            Some(label) => node.labels.get(label).map(String::as_str),
            None => return true,
        },
    };
    (have == Some(want)) == equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, state: &str, availability: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            hostname: format!("host-{id}"),
            labels: [("zone".to_string(), id.to_string())].into(),
            state: state.into(),
            availability: availability.into(),
            role: "worker".into(),
        }
    }

    fn task(node: Option<&str>, state: &str) -> TaskInfo {
        TaskInfo {
            id: "t".into(),
            slot: Some(1),
            node_id: node.map(str::to_string),
            desired_state: "running".into(),
            state: state.into(),
            error: None,
            message: None,
            timestamp: None,
            spec: Value::Null,
        }
    }

    fn constrained(c: &str) -> Value {
        json!({"TaskTemplate": {"Placement": {"Constraints": [c]}}})
    }

    #[test]
    fn names_the_node_that_keeps_a_service_from_running() {
        let nodes = [node("a", "ready", "active"), node("b", "down", "active")];
        // Pinned to a node that is down.
        assert_eq!(
            node_trouble(
                &constrained("node.hostname==host-b"),
                &[task(None, "pending")],
                &nodes
            ),
            Some("every node matching node.hostname==host-b is unavailable: host-b is down".into())
        );
        // A label no node has.
        assert_eq!(
            node_trouble(
                &constrained("node.labels.zone==c"),
                &[task(None, "pending")],
                &nodes
            ),
            Some("no node matches the placement constraints (node.labels.zone==c)".into())
        );
        // A task stuck on a drained node.
        let drained = [node("a", "ready", "drain")];
        assert_eq!(
            node_trouble(&json!({}), &[task(Some("a"), "assigned")], &drained),
            Some("node host-a is ready, drained".into())
        );
        // Nothing to blame on nodes: a ready node could take it.
        assert_eq!(
            node_trouble(
                &constrained("node.labels.zone!=b"),
                &[task(None, "pending")],
                &nodes
            ),
            None
        );
        assert_eq!(
            node_trouble(&json!({}), &[task(Some("a"), "running")], &nodes),
            None
        );
    }
}
