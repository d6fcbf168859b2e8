//! The editor experience, tested with the real client: drives the real `yaml-language-server`
//! (npm, installed into `tests/lsp/node_modules` by `scripts/setup.sh`) over the Language
//! Server Protocol on stdio, offline with SchemaStore off, and checks the diagnostics it
//! publishes for manifests that use the `# yaml-language-server: $schema=...` modeline with
//! the committed `schemas/kargo.json`.
//!
//! A missing server fails the test (never a skip): the test command installs it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// The modeline every document of a test file starts with.
const MODELINE: &str = "# yaml-language-server: $schema=../schemas/kargo.json";

/// How long the whole exchange may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(90);

/// Once every file has diagnostics, how long without new ones counts as settled.
const QUIET: Duration = Duration::from_millis(1500);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn server_script() -> PathBuf {
    let script =
        repo().join("tests/lsp/node_modules/yaml-language-server/bin/yaml-language-server");
    assert!(
        script.exists(),
        "yaml-language-server is not installed at {}: run scripts/setup.sh (it runs `npm ci --prefix tests/lsp`)",
        script.display()
    );
    script
}

/// One message from the server.
enum Incoming {
    Response {
        id: i64,
        result: Value,
    },
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
}

/// A JSON-RPC connection to the server over its stdio.
struct Lsp {
    child: Child,
    stdin: ChildStdin,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    next_id: i64,
}

impl Lsp {
    async fn start(root: &Path) -> Lsp {
        let mut child = Command::new("node")
            .arg(server_script())
            .arg("--stdio")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (Node.js must be installed: scripts/setup.sh)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length:") {
                        length = v.trim().parse::<usize>().ok();
                    }
                }
                let Some(length) = length else { return };
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                let Ok(message) = serde_json::from_slice::<Value>(&body) else {
                    continue;
                };
                let method = message
                    .get("method")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let params = message.get("params").cloned().unwrap_or(Value::Null);
                let item = match (message.get("id").cloned(), method) {
                    (Some(id), Some(method)) => Incoming::Request { id, method, params },
                    (None, Some(method)) => Incoming::Notification { method, params },
                    (Some(id), None) => Incoming::Response {
                        id: id.as_i64().unwrap_or(-1),
                        result: message.get("result").cloned().unwrap_or(Value::Null),
                    },
                    (None, None) => continue,
                };
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        Lsp {
            child,
            stdin,
            incoming,
            next_id: 1,
        }
    }

    async fn send(&mut self, message: Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.stdin
            .write_all(frame.as_bytes())
            .await
            .expect("write to the language server");
        self.stdin.flush().await.expect("flush");
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// Sends a request and waits for its response, answering the server's own requests meanwhile.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            match self.recv(DEADLINE).await {
                Some(Incoming::Response { id: got, result }) if got == id => return result,
                Some(Incoming::Request { id, method, params }) => {
                    self.answer(id, &method, &params).await;
                }
                Some(_) => {}
                None => panic!("no response to {method} within {DEADLINE:?}"),
            }
        }
    }

    async fn recv(&mut self, wait: Duration) -> Option<Incoming> {
        timeout(wait, self.incoming.recv()).await.ok().flatten()
    }

    /// Answers a request from the server: settings for `workspace/configuration`, null otherwise.
    async fn answer(&mut self, id: Value, method: &str, params: &Value) {
        let result = if method == "workspace/configuration" {
            let items = params
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            Value::Array(
                items
                    .iter()
                    .map(|item| match item.get("section").and_then(Value::as_str) {
                        Some("yaml") => settings()["yaml"].clone(),
                        _ => Value::Null,
                    })
                    .collect(),
            )
        } else {
            Value::Null
        };
        self.send(json!({"jsonrpc": "2.0", "id": id, "result": result}))
            .await;
    }
}

/// The yaml settings: validation on, SchemaStore off (offline), no glob associations (the
/// modelines do the work).
fn settings() -> Value {
    json!({
        "yaml": {
            "validate": true,
            "hover": true,
            "completion": true,
            "format": {"enable": false},
            "schemaStore": {"enable": false},
            "schemas": {},
            "customTags": []
        }
    })
}

/// One diagnostic as published: 1-based line and the message.
#[derive(Clone, Debug)]
struct Published {
    line: u64,
    message: String,
}

/// Opens every file and waits until each has published diagnostics and the server is quiet.
async fn diagnostics(root: &Path, files: &[(String, String)]) -> HashMap<String, Vec<Published>> {
    let mut lsp = Lsp::start(root).await;
    let root_uri = format!("file://{}", root.display());
    lsp.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": root_uri,
            "capabilities": {
                "workspace": {"configuration": true, "didChangeConfiguration": {"dynamicRegistration": true}},
                "textDocument": {"publishDiagnostics": {"relatedInformation": false}}
            },
            "initializationOptions": settings(),
        }),
    )
    .await;
    lsp.notify("initialized", json!({})).await;
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": settings()}),
    )
    .await;
    let mut uris = HashMap::new();
    for (name, text) in files {
        let path = root.join("manifests").join(name);
        let uri = format!("file://{}", path.display());
        uris.insert(uri.clone(), name.clone());
        lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}),
        )
        .await;
    }
    let mut found: HashMap<String, Vec<Published>> = HashMap::new();
    let deadline = Instant::now() + DEADLINE;
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        assert!(
            now < deadline,
            "the language server did not publish diagnostics for every file within {DEADLINE:?}; got them for {:?}",
            found.keys().collect::<Vec<_>>()
        );
        if found.len() == files.len() && now.duration_since(last_change) >= QUIET {
            break;
        }
        match lsp.recv(Duration::from_millis(200)).await {
            Some(Incoming::Notification { method, params })
                if method == "textDocument/publishDiagnostics" =>
            {
                let uri = params
                    .get("uri")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if let Some(name) = uris.get(uri) {
                    let list = params
                        .get("diagnostics")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|d| Published {
                            line: d
                                .pointer("/range/start/line")
                                .and_then(Value::as_u64)
                                .unwrap_or(0)
                                + 1,
                            message: d
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        })
                        .collect();
                    found.insert(name.clone(), list);
                    last_change = Instant::now();
                }
            }
            Some(Incoming::Request { id, method, params }) => {
                lsp.answer(id, &method, &params).await
            }
            _ => {}
        }
    }
    let _ = lsp.request("shutdown", Value::Null).await;
    lsp.notify("exit", Value::Null).await;
    let _ = timeout(Duration::from_secs(5), lsp.child.wait()).await;
    found
}

/// A test workspace: `schemas/kargo.json` (the committed file) and `manifests/`.
fn workspace(files: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("schemas")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("manifests")).expect("mkdir");
    std::fs::copy(
        repo().join("schemas/kargo.json"),
        dir.path().join("schemas/kargo.json"),
    )
    .expect("copy schemas/kargo.json");
    for (name, text) in files {
        std::fs::write(dir.path().join("manifests").join(name), text).expect("write");
    }
    dir
}

/// A document of `kind` with an unknown field and a wrong type (each marked `# <-` on its
/// line), and the expected (line offset, message) pairs.
fn broken(kind: &str, n: usize) -> (String, Vec<(usize, String)>) {
    let (body, unknown, wrong) = match kind {
        "Service" => (
            format!(
                "spec:\n  image: \"busybox:1\"\n  imagePullPolicy{n}: always # <-\n  ports:\n    - target: http # <-\n"
            ),
            format!("imagePullPolicy{n}"),
            "Incorrect type. Expected \"integer\"",
        ),
        "Stack" => (
            format!(
                "spec:\n  services: [web]\n  suspended{n}: true # <-\n  progressDeadlineSeconds: soon # <-\n"
            ),
            format!("suspended{n}"),
            "Incorrect type. Expected \"integer\"",
        ),
        "Environment" => (
            format!(
                "spec:\n  variables:\n    A: b\n  stack{n}: [apps] # <-\n  adopt: \"yes\" # <-\n"
            ),
            format!("stack{n}"),
            "Incorrect type. Expected \"boolean\"",
        ),
        _ => (
            format!("spec:\n  environment: prod\n  default{n}: builtin # <-\n  files: [a] # <-\n"),
            format!("default{n}"),
            "Incorrect type. Expected \"object",
        ),
    };
    let text = format!(
        "{MODELINE}\napiVersion: kargo.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: {}{n}\n{body}",
        kind.to_lowercase()
    );
    let marked: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.ends_with("# <-"))
        .map(|(i, _)| i)
        .collect();
    let expected = vec![
        (marked[0], format!("Property {unknown} is not allowed")),
        (marked[1], wrong.to_string()),
    ];
    (text, expected)
}

#[tokio::test]
async fn yaml_language_server_reports_schema_errors_at_their_lines() {
    let valid = std::fs::read_to_string(repo().join("manifests/services.yaml"))
        .expect("read manifests/services.yaml");
    assert!(
        valid.matches("---").count() >= 2,
        "the valid file must hold several documents"
    );
    let mut files = vec![("valid.yaml".to_string(), valid)];
    let mut expected: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for kind in ["Configuration", "Environment", "Stack", "Service"] {
        // Two broken documents in one file: errors in the first and in the second document.
        let (first, first_expected) = broken(kind, 1);
        let (second, second_expected) = broken(kind, 2);
        let offset = first.lines().count() + 1; // the `---` line
        let text = format!("{first}---\n{second}");
        let name = format!("{}.yaml", kind.to_lowercase());
        let mut want: Vec<(u64, String)> = first_expected
            .into_iter()
            .map(|(l, m)| (l as u64 + 1, m))
            .collect();
        want.extend(
            second_expected
                .into_iter()
                .map(|(l, m)| ((l + offset) as u64 + 1, m)),
        );
        expected.insert(name.clone(), want);
        files.push((name, text));
    }
    let dir = workspace(&files);
    let found = diagnostics(dir.path(), &files).await;

    let valid = found.get("valid.yaml").expect("diagnostics for valid.yaml");
    assert!(
        valid.is_empty(),
        "a valid multi-document file got diagnostics: {valid:?}"
    );
    for (name, want) in &expected {
        let got = found
            .get(name)
            .unwrap_or_else(|| panic!("no diagnostics for {name}"));
        for (line, message) in want {
            assert!(
                got.iter()
                    .any(|d| d.line == *line && d.message.contains(message.as_str())),
                "{name}: expected {message:?} at line {line}; the server published {got:?}"
            );
        }
        assert_eq!(
            got.len(),
            want.len(),
            "{name}: unexpected extra diagnostics: {got:?}"
        );
    }
}
