use serde_json::json;

use super::*;

fn spec(v: Value) -> ServiceSpec {
    serde_json::from_value(v).expect("a ServiceSpec")
}

fn policy(v: Value) -> PolicySpec {
    serde_json::from_value(v).expect("a PolicySpec")
}

fn same(n: &str) -> String {
    n.to_string()
}

fn rules(findings: &[Finding]) -> Vec<PolicyRule> {
    findings.iter().map(|f| f.rule).collect()
}

fn socket_service() -> ServiceSpec {
    spec(json!({
        "image": "traefik:1.7",
        "volumes": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"}]
    }))
}

#[test]
fn baseline_is_the_default_and_refuses_the_docker_socket() {
    let found = check(None, "proxy", &socket_service(), &same, None);
    assert_eq!(rules(&found), [PolicyRule::DockerSocket]);
    assert_eq!(found[0].field, "spec.volumes[0].source");
    assert!(
        found[0].message.contains("baseline"),
        "{}",
        found[0].message
    );
    assert!(
        found[0]
            .message
            .contains("spec.policy.exemptions.proxy.allow: [dockerSocket]"),
        "the message says how to exempt: {}",
        found[0].message
    );
}

#[test]
fn a_folder_holding_the_socket_is_the_socket_even_when_allow_listed() {
    let p = policy(json!({"allowedHostPaths": ["/var", "/run"]}));
    for source in [
        "/",
        "/var",
        "/var/run/",
        "/run",
        "/var/run/../run/./docker.sock",
        "//var//run",
    ] {
        let s = spec(
            json!({"image": "x:1", "volumes": [{"type": "bind", "source": source, "target": "/h"}]}),
        );
        assert_eq!(
            rules(&check(Some(&p), "x", &s, &same, None)),
            [PolicyRule::DockerSocket],
            "{source}"
        );
    }
}

#[test]
fn host_paths_pass_only_inside_the_allow_list() {
    let p = policy(json!({"allowedHostPaths": ["/srv/data/"]}));
    let bind = |source: &str| {
        spec(json!({"image": "x:1", "volumes": [
            {"type": "bind", "source": source, "target": "/d"},
            {"type": "volume", "source": "named", "target": "/v"},
            {"type": "tmpfs", "target": "/t"}
        ]}))
    };
    assert!(check(Some(&p), "x", &bind("/srv/data"), &same, None).is_empty());
    assert!(check(Some(&p), "x", &bind("/srv/data/maps"), &same, None).is_empty());
    for outside in [
        "/srv/database",
        "/srv/data/../../etc",
        "/etc",
        "relative/path",
    ] {
        assert_eq!(
            rules(&check(Some(&p), "x", &bind(outside), &same, None)),
            [PolicyRule::HostPath],
            "{outside}"
        );
    }
    // Not interpolated yet: judged once the variable is known.
    assert!(check(Some(&p), "x", &bind("${DATA}"), &same, None).is_empty());
}

#[test]
fn the_host_network_is_refused_also_through_a_logical_name() {
    let s = spec(json!({"image": "x:1", "networks": ["front", "back"]}));
    let front_is_host = |n: &str| {
        if n == "front" {
            "host".into()
        } else {
            n.to_string()
        }
    };
    let found = check(None, "x", &s, &front_is_host, None);
    assert_eq!(rules(&found), [PolicyRule::HostNetwork]);
    assert_eq!(found[0].field, "spec.networks[0]");
    assert!(check(None, "x", &s, &same, None).is_empty());
}

#[test]
fn restricted_wants_a_non_root_user_read_only_binds_and_no_host_ports() {
    let p = policy(json!({"level": "restricted", "allowedHostPaths": ["/srv"]}));
    let s = |user: Value| {
        spec(json!({
            "image": "x:1", "user": user,
            "volumes": [{"type": "bind", "source": "/srv/a", "target": "/a"}],
            "ports": [{"target": 80, "published": 80, "mode": "host"}, {"target": 81}]
        }))
    };
    for root in [
        json!("0"),
        json!("root"),
        json!("0:0"),
        json!("root:staff"),
        json!(null),
    ] {
        assert_eq!(
            rules(&check(Some(&p), "x", &s(root.clone()), &same, None)),
            [
                PolicyRule::WritableHostPath,
                PolicyRule::RunAsRoot,
                PolicyRule::HostPort
            ],
            "{root}"
        );
    }
    let fine = spec(json!({
        "image": "x:1", "user": "1000:1000",
        "volumes": [{"type": "bind", "source": "/srv/a", "target": "/a", "readOnly": true}],
        "ports": [{"target": 81, "published": 8081}]
    }));
    assert!(check(Some(&p), "x", &fine, &same, None).is_empty());
    // Baseline asks none of that.
    assert!(
        check(None, "x", &s(json!("0")), &same, None).len() == 1,
        "only the host path"
    );
}

#[test]
fn privileged_checks_nothing() {
    let p = policy(json!({"level": "privileged"}));
    assert!(check(Some(&p), "proxy", &socket_service(), &same, None).is_empty());
}

#[test]
fn an_exemption_waives_its_rules_for_its_image_only() {
    let p = policy(
        json!({"exemptions": {"proxy": {"image": "docker.io/library/traefik:2.0", "allow": ["dockerSocket"]}}}),
    );
    assert!(check(Some(&p), "proxy", &socket_service(), &same, None).is_empty());
    // Another Service, or another image under the same name: not exempt.
    assert_eq!(
        check(Some(&p), "other", &socket_service(), &same, None).len(),
        1
    );
    let mut evil = socket_service();
    evil.image = Some("evil/traefik:1.7".into());
    assert_eq!(check(Some(&p), "proxy", &evil, &same, None).len(), 1);
    // An exemption with no image holds for any image; one rule does not waive another.
    let any = policy(json!({"exemptions": {"proxy": {"allow": ["hostNetwork"]}}}));
    assert_eq!(check(Some(&any), "proxy", &evil, &same, None).len(), 1);
}

#[test]
fn an_exemption_with_host_paths_covers_exactly_those() {
    let p = policy(
        json!({"exemptions": {"agent": {"allow": ["hostPath"], "hostPaths": ["/proc", "/sys/"]}}}),
    );
    let s = |source: &str| {
        spec(
            json!({"image": "x:1", "volumes": [{"type": "bind", "source": source, "target": "/h"}]}),
        )
    };
    assert!(check(Some(&p), "agent", &s("/sys"), &same, None).is_empty());
    assert_eq!(check(Some(&p), "agent", &s("/etc"), &same, None).len(), 1);
    assert_eq!(
        check(Some(&p), "agent", &s("/proc/1"), &same, None).len(),
        1
    );
}

#[test]
fn catalog_entries_that_need_the_host_ship_an_exemption_tied_to_their_image() {
    for name in [
        "cadvisor",
        "node-exporter",
        "traefik",
        "logspout",
        "promtail",
    ] {
        let entry = crate::manifest::catalog_spec(name).expect("in the catalog");
        let s = spec(entry);
        let builtin = catalog_exemption(name);
        assert!(builtin.is_some(), "{name} ships an exemption");
        assert!(
            !check(None, name, &s, &same, None).is_empty(),
            "{name} needs one"
        );
        assert_eq!(check(None, name, &s, &same, builtin), [], "{name}");
        // Overriding the image drops it.
        let mut other = s.clone();
        other.image = Some("busybox:1".into());
        assert!(
            !check(None, name, &other, &same, builtin).is_empty(),
            "{name} with another image"
        );
        // A host path the entry does not ship is not covered.
        let mut more = s.clone();
        more.volumes.get_or_insert_with(Vec::new).push(
            serde_json::from_value(json!({"type": "bind", "source": "/etc", "target": "/e"}))
                .expect("volume"),
        );
        assert!(
            !check(None, name, &more, &same, builtin).is_empty(),
            "{name} with /etc"
        );
    }
    // Every other entry passes baseline as shipped (the data folders of the map servers
    // are the user's: named with variables, allowed by `allowedHostPaths`).
    for name in crate::manifest::defaults::names() {
        let s = spec(crate::manifest::catalog_spec(name).expect("entry"));
        assert_eq!(
            check(None, name, &s, &same, catalog_exemption(name)),
            [],
            "{name}"
        );
    }
}

#[test]
fn image_repositories_compare_without_tag_digest_or_hub_shorthand() {
    assert_eq!(image_repository("traefik:1.7"), "docker.io/library/traefik");
    assert_eq!(
        image_repository("prom/node-exporter:v1"),
        "docker.io/prom/node-exporter"
    );
    assert_eq!(
        image_repository("gcr.io/cadvisor/cadvisor@sha256:abc"),
        "gcr.io/cadvisor/cadvisor"
    );
    assert_eq!(
        image_repository("localhost:5000/app:2"),
        "localhost:5000/app"
    );
    assert_eq!(image_repository("localhost:5000/app"), "localhost:5000/app");
}
