//! Finding the Swarm services of a kargo Service or Stack, and showing their tasks.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::Kind;
use crate::swarm::names::parse_swarm_service;
use crate::swarm::{LiveService, NodeInfo, SwarmClient, TaskInfo};

use super::CliError;
use super::output::{age_of, render_table};

/// The installation's Swarm services that belong to a Service (any stack) or a Stack,
/// sorted by name. Found by name and installation label, so a catalog-only service
/// or one whose status was never written is found too.
pub async fn services_of(
    swarm: &SwarmClient,
    installation: &str,
    kind: Kind,
    name: &str,
) -> Result<Vec<LiveService>, CliError> {
    let mut found: Vec<LiveService> = swarm
        .list_services(installation)
        .await?
        .into_iter()
        .filter(|s| match (kind, parse_swarm_service(&s.name)) {
            (Kind::Service, Some((_, svc))) => svc == name,
            (Kind::Stack, Some((stack, _))) => stack == name,
            _ => false,
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Tasks of services as a `docker service ps`-like table: newest first per service.
pub async fn tasks_table(
    swarm: &SwarmClient,
    services: &[LiveService],
    all: bool,
) -> Result<String, CliError> {
    let nodes: BTreeMap<String, NodeInfo> = swarm
        .nodes()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.id.clone(), n))
        .collect();
    let mut rows = Vec::new();
    for s in services {
        let mut tasks = swarm.tasks(&s.id).await?;
        if !all {
            tasks.retain(|t| t.desired_state == "running" || t.desired_state == "complete");
        }
        tasks.sort_by(|a, b| a.slot.cmp(&b.slot).then(b.timestamp.cmp(&a.timestamp)));
        for t in &tasks {
            rows.push(task_row(s, t, &nodes));
        }
    }
    Ok(render_table(
        &[
            "ID",
            "NAME",
            "IMAGE",
            "NODE",
            "NODE STATE",
            "DESIRED",
            "CURRENT",
            "AGE",
            "ERROR",
        ],
        &rows,
        true,
    ))
}

fn task_row(s: &LiveService, t: &TaskInfo, nodes: &BTreeMap<String, NodeInfo>) -> Vec<String> {
    let image = t
        .spec
        .pointer("/ContainerSpec/Image")
        .and_then(Value::as_str)
        .map(|i| i.split('@').next().unwrap_or(i).to_string())
        .unwrap_or_default();
    let name = match t.slot {
        Some(slot) => format!("{}.{slot}", s.name),
        None => s.name.clone(),
    };
    let known = t.node_id.as_ref().and_then(|id| nodes.get(id));
    let node = match (known, &t.node_id) {
        (Some(n), _) => n.hostname.clone(),
        (None, Some(id)) => short(id),
        (None, None) => String::new(),
    };
    let node_state = known.map(NodeInfo::describe_state).unwrap_or_default();
    let error = t.error.clone().unwrap_or_default();
    vec![
        short(&t.id),
        name,
        image,
        node,
        node_state,
        t.desired_state.clone(),
        t.state.clone(),
        t.timestamp.as_deref().map(age_of).unwrap_or_default(),
        error,
    ]
}

/// A task as `docker service logs` names it: `SERVICE.SLOT.TASKID@NODE`.
pub fn task_label(s: &LiveService, t: &TaskInfo, nodes: &BTreeMap<String, String>) -> String {
    let mut label = s.name.clone();
    if let Some(slot) = t.slot {
        label.push_str(&format!(".{slot}"));
    }
    label.push('.');
    label.push_str(&short(&t.id));
    if let Some(node) = &t.node_id {
        label.push('@');
        label.push_str(nodes.get(node).map_or(node.as_str(), String::as_str));
    }
    label
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}
