//! `kargo validate` and the validation behind `kargo apply`, offline: the corpus of invalid
//! manifests under `tests/invalid/` (each file names the errors it must produce), the valid
//! examples and defaults, hostile input, output formats and exit codes of the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kargo::manifest::load::Source;
use kargo::manifest::validate::{Options, Rule, validate_sources};
use kargo::manifest::yaml::Limits;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kargo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(args)
        .current_dir(repo())
        // validate is offline: an etcd that cannot exist proves it is never asked.
        .env("KARGO_ETCD_ENDPOINTS", "127.0.0.1:1")
        .output()
        .expect("run kargo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn source(name: &str, bytes: impl Into<Vec<u8>>) -> Source {
    Source {
        name: name.to_string(),
        bytes: bytes.into(),
    }
}

/// The `# expect: LINE: TEXT` lines of a corpus file.
fn expectations(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .filter_map(|rest| {
            let (line, message) = rest.split_once(": ")?;
            Some((line.trim().parse().ok()?, message.to_string()))
        })
        .collect()
}

/// The corpus file whose name ends with `-{name}.yaml`, relative to the repository.
fn corpus(name: &str) -> String {
    let suffix = format!("-{name}.yaml");
    let found = yaml_files(&repo().join("tests/invalid"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no tests/invalid/*{suffix}"));
    found
        .strip_prefix(repo())
        .unwrap_or(&found)
        .display()
        .to_string()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_manifest_reports_exactly_its_expected_errors() {
    let files = yaml_files(&repo().join("tests/invalid"));
    assert!(
        files.len() >= 60,
        "the corpus must hold at least 60 invalid manifests, has {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).expect("read");
        let want = expectations(&String::from_utf8_lossy(&bytes));
        let name = path
            .strip_prefix(repo())
            .unwrap_or(path)
            .display()
            .to_string();
        if want.is_empty() {
            failures.push(format!("{name}: no `# expect:` line"));
            continue;
        }
        let report = validate_sources(&[source(&name, bytes)], &Options::default());
        let got: Vec<(usize, String)> = report
            .diagnostics()
            .map(|d| (d.line, d.to_string()))
            .collect();
        let mut unmatched: Vec<&(usize, String)> = got.iter().collect();
        for (line, message) in &want {
            match unmatched
                .iter()
                .position(|(l, m)| l == line && m.contains(message.as_str()))
            {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => failures.push(format!("{name}: missing at line {line}: {message}")),
            }
        }
        for (_, m) in unmatched {
            failures.push(format!("{name}: unexpected: {m}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_example_workspace_and_the_defaults_are_valid() {
    let out = kargo(&[
        "validate",
        "-f",
        "manifests/",
        "-f",
        "defaults/",
        "--summary",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(" 0 invalid, 0 unreadable; 0 errors"),
        "{stdout}"
    );
}

#[test]
fn every_document_of_the_example_workspace_has_the_modeline() {
    for path in yaml_files(&repo().join("manifests"))
        .into_iter()
        .chain(yaml_files(&repo().join("defaults")))
    {
        let text = std::fs::read_to_string(&path).expect("read");
        for (i, document) in text.split("\n---\n").enumerate() {
            assert!(
                document
                    .trim_start()
                    .starts_with("# yaml-language-server: $schema=../schemas/kargo.json"),
                "{} document {i} does not start with the modeline",
                path.display()
            );
        }
    }
}

#[test]
fn exit_codes_follow_kubeconform() {
    let ok = kargo(&["validate", "-f", "manifests/"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    assert!(
        ok.stdout.is_empty(),
        "valid input prints nothing without --summary"
    );

    let file = corpus("service-unknown-field");
    let bad = kargo(&["validate", "-f", &file]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        text(&bad.stdout),
        format!(
            "{file}:11:3: service/web: spec.imag: unknown field `imag` in spec; did you mean `image`?\n"
        )
    );

    let missing = kargo(&["validate", "-f", "manifests/", "-f", "no/such/file.yaml"]);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "an unreadable input is exit 2"
    );
    assert!(text(&missing.stdout).contains("no/such/file.yaml:1:1: cannot read"));

    let usage = kargo(&["validate"]);
    assert_eq!(usage.status.code(), Some(2), "no -f is a usage error");
    let empty = tempfile::tempdir().expect("tempdir");
    let nothing = kargo(&["validate", "-f", &empty.path().display().to_string()]);
    assert_eq!(
        nothing.status.code(),
        Some(2),
        "no manifest found is a usage error"
    );
}

#[test]
fn what_swarm_refuses_only_at_deploy_is_reported_at_its_line() {
    let file = corpus("service-refused-together");
    let out = kargo(&["validate", "-f", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{file}:15:15: service/agent: spec.deploy.replicas: deploy.replicas is for replicated modes: a global service runs one task per node (remove replicas)\n\
             {file}:27:7: service/dns: spec.ports[1]: endpointMode dnsrr cannot publish through the ingress routing mesh: publish with mode: host, or use vip\n"
        )
    );

    let file = corpus("stack-service-name-taken");
    let out = kargo(&["validate", "-f", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{file}:12:7: stack/vote: spec.services[1]: service `vote-redis` would be the Swarm service `kargo-vote_redis` of service `redis`: give one of them another serviceName\n"
        )
    );
}

#[test]
fn json_output_has_the_documented_envelope() {
    let out = kargo(&[
        "validate",
        "-o",
        "json",
        "-f",
        "manifests/",
        "-f",
        &corpus("stack-unknown-field"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["apiVersion"], "kargo.dev/v1alpha1");
    assert_eq!(report["kind"], "ValidationReport");
    assert_eq!(report["valid"], false);
    assert_eq!(report["summary"]["invalid"], 1);
    assert_eq!(report["summary"]["errors"], 1);
    let files = report["files"].as_array().expect("files");
    let bad = files.last().expect("a file");
    let d = &bad["diagnostics"][0];
    assert_eq!(d["rule"], "unknown-field");
    assert_eq!(d["path"], "spec.service");
    assert_eq!(d["object"], "stack/apps");
    assert!(d["line"].as_u64().is_some() && d["column"].as_u64().is_some());
}

#[test]
fn junit_output_has_a_case_per_document() {
    let out = kargo(&[
        "validate",
        "-o",
        "junit",
        "-f",
        "manifests/stacks.yaml",
        "-f",
        &corpus("stack-unknown-field"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let xml = text(&out.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(
            "<testcase classname=\"manifests/stacks.yaml\" name=\"stack/backend (document 0)\"/>"
        ),
        "{xml}"
    );
    assert!(xml.contains("<failure message="), "{xml}");
    assert_eq!(xml.matches("<testsuite ").count(), 2);
}

#[test]
fn stdin_is_read_with_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kargo"))
        .args(["validate", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {name: a}\nspec: {services: [], suspend: 1}\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("-:4:"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn apply_writes_nothing_when_a_document_is_invalid() {
    // The store is unreachable: apply must refuse on validation, before it connects.
    let out = kargo(&[
        "apply",
        "-f",
        "manifests/stacks.yaml",
        "-f",
        &corpus("service-port-out-of-range"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("-service-port-out-of-range.yaml:12:15: service/web: spec.ports[0].target: 70000 is out of range"), "{stderr}");
    assert!(stderr.contains("nothing was"), "{stderr}");
}

#[test]
fn the_committed_schemas_are_what_the_code_generates() {
    for (name, generated) in kargo::api::schema::schema_files() {
        let path = repo().join("schemas").join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "schemas/{name} differs from what the code generates; regenerate with `cargo run -- schema --out schemas/` and commit the result"
        );
    }
}

// ---- hostile input: a clear error, in bounded time, never a panic ----

fn check_hostile(name: &str, bytes: Vec<u8>, want: &str) {
    let started = Instant::now();
    let report = validate_sources(&[source(name, bytes)], &Options::default());
    let elapsed = started.elapsed();
    let messages: Vec<String> = report.diagnostics().map(ToString::to_string).collect();
    assert!(
        messages.iter().any(|m| m.contains(want)),
        "{name}: expected an error containing {want:?}, got {messages:?}"
    );
    assert!(
        messages.len() <= 60,
        "{name}: {} errors is too many to read",
        messages.len()
    );
    assert!(elapsed < Duration::from_secs(5), "{name}: took {elapsed:?}");
}

#[test]
fn an_alias_bomb_stops_at_the_node_limit() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        yaml.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    check_hostile(
        "bomb.yaml",
        yaml.into_bytes(),
        "expands to more than 1000000 nodes",
    );
}

#[test]
fn deep_nesting_is_refused() {
    let block: String = (0..200)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    check_hostile(
        "deep.yaml",
        block.into_bytes(),
        "nest deeper than 128 levels",
    );
    let flow = format!("spec: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    check_hostile("flow.yaml", flow.into_bytes(), "nest deeper than");
}

#[test]
fn a_huge_file_is_refused_before_parsing() {
    let huge = vec![b'#'; Limits::default().max_bytes + 1];
    check_hostile("huge.yaml", huge, "the limit is 8388608 bytes");
}

#[test]
fn a_huge_file_on_disk_is_read_only_up_to_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(64 * 1024 * 1024).expect("sparse 64 MiB file");
    let out = kargo(&["validate", "-f", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("the limit is 8388608 bytes"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn binary_and_non_utf8_input_is_named_as_such() {
    check_hostile(
        "bin.yaml",
        vec![0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1, 2],
        "invalid UTF-8",
    );
    check_hostile(
        "nul.yaml",
        b"kind: Stack\x00\x01\x02\n".to_vec(),
        "control character",
    );
}

#[test]
fn empty_documents_and_files_are_not_objects() {
    let report = validate_sources(
        &[
            source("empty.yaml", ""),
            source("dashes.yaml", "---\n---\n# only a comment\n"),
        ],
        &Options::default(),
    );
    assert!(report.is_valid());
    assert_eq!(report.summary().documents, 0);
    assert!(report.objects.is_empty());
}

#[test]
fn tabs_are_pointed_at() {
    check_hostile(
        "tabs.yaml",
        b"apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata:\n\tname: a\n".to_vec(),
        "4:1: tabs are not allowed",
    );
}

#[test]
fn many_errors_in_one_document_are_capped() {
    let mut yaml = String::from(
        "apiVersion: kargo.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  env:\n",
    );
    for i in 0..5000 {
        yaml.push_str(&format!("    V{i}: {i}\n"));
    }
    let report = validate_sources(&[source("many.yaml", yaml)], &Options::default());
    let all: Vec<_> = report.diagnostics().collect();
    assert!(all.len() <= 52, "{} errors", all.len());
    assert!(
        all.iter()
            .any(|d| d.message.contains("more errors in this document"))
    );
}

#[test]
fn errors_in_every_file_are_reported_in_parallel_runs() {
    let sources: Vec<Source> = (0..64)
        .map(|i| source(&format!("f{i}.yaml"), format!("apiVersion: kargo.dev/v1alpha1\nkind: Stack\nmetadata: {{name: s{i}}}\nspec: {{servces: []}}\n")))
        .collect();
    let report = validate_sources(
        &sources,
        &Options {
            threads: 4,
            ..Options::default()
        },
    );
    assert_eq!(report.files.len(), 64);
    for (i, f) in report.files.iter().enumerate() {
        assert_eq!(f.file, format!("f{i}.yaml"), "input order is kept");
        assert_eq!(f.diagnostics.len(), 1);
        assert_eq!(f.diagnostics[0].rule, Rule::UnknownField);
    }
}

#[test]
fn a_sensitive_variable_in_env_is_reported_at_its_place_by_validate() {
    let file = corpus("sensitive-variable-misused");
    let out = kargo(&["validate", "-f", &file]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "{file}:27:18: service/web: spec.env.DB_PASSWORD: references the sensitive variable DB_PASSWORD"
        )),
        "{stdout}"
    );
    // The value itself is never printed; the `*_FILE` variable and `$$` literal pass.
    assert!(!stdout.contains("not-in-env"), "{stdout}");
    assert!(!stdout.contains("DB_PASSWORD_FILE"), "{stdout}");
    assert!(!stdout.contains("LITERAL"), "{stdout}");
    // The same input without the Environment declares nothing sensitive: no such error.
    let plain = std::fs::read_to_string(repo().join(&file))
        .expect("read")
        .replace(
            "sensitiveVariables:\n    DB_PASSWORD: \"not-in-env\"",
            "variables: {}",
        );
    let report = validate_sources(&[source("plain.yaml", plain)], &Options::default());
    assert!(
        report.diagnostics().all(|d| d.rule != Rule::Sensitive),
        "{:?}",
        report.diagnostics().collect::<Vec<_>>()
    );
}
