//! Times `kargo::manifest::yaml::parse_documents` on a generated ~5 MB multi-document file.
//!
//! Run with `cargo run --release --example yaml_parse_time`.

use std::time::Instant;

use kargo::manifest::yaml;

/// One Service manifest, varied by `i`, about 700 bytes.
fn manifest(i: usize) -> String {
    format!(
        r#"---
apiVersion: kargo.dev/v1alpha1
kind: Service
metadata:
  name: service-{i}
  labels:
    app.kubernetes.io/name: service-{i}
    team: "platform"
  annotations:
    kargo.dev/description: >-
      A generated service used to time the YAML reader,
      number {i}.
spec:
  image: registry.example/app-{i}:1.{i}
  command: ["/bin/sh", "-c"]
  args:
    - exec /app --port 8080 --name service-{i}
  env:
    LOG_LEVEL: info
    REPLICA_HINT: "{i}"
    DATABASE_URL: ${{DATABASE_URL}}
  ports:
    - target: 8080
      published: {port}
      protocol: tcp
      mode: host
  volumes:
    - type: volume
      source: data-{i}
      target: /var/lib/app
      readOnly: false
  healthcheck:
    test: ["CMD", "wget", "-q", "-O-", "http://localhost:8080/health"]
    interval: 30s
    timeout: 5s
    retries: 3
  deploy:
    mode: replicated
    replicas: 2
    placement:
      constraints: [node.role == worker]
    resources:
      limits: {{cpus: "0.50", memory: 512M}}
"#,
        port = 10000 + i % 50000
    )
}

fn main() {
    let mut text = String::new();
    let mut count = 0;
    while text.len() < 5_000_000 {
        text.push_str(&manifest(count));
        count += 1;
    }
    let runs = 5;
    let mut best = f64::MAX;
    let mut nodes_checked = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let docs = match yaml::parse_documents(text.as_bytes()) {
            Ok(docs) => docs,
            Err(errors) => {
                eprintln!("unexpected errors: {errors:?}");
                std::process::exit(1);
            }
        };
        best = best.min(start.elapsed().as_secs_f64());
        nodes_checked = docs.len();
    }
    let mut serde_best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let values: Result<Vec<serde_json::Value>, _> = serde_yaml::Deserializer::from_str(&text)
            .map(serde::Deserialize::deserialize)
            .collect();
        serde_best = serde_best.min(start.elapsed().as_secs_f64());
        if values.is_err() {
            eprintln!("serde_yaml failed");
        }
    }
    println!(
        "{} bytes, {} documents: kargo yaml reader {:.1} ms (best of {runs}), {:.1} MB/s; serde_yaml into serde_json::Value {:.1} ms",
        text.len(),
        nodes_checked,
        best * 1000.0,
        text.len() as f64 / best / 1e6,
        serde_best * 1000.0,
    );
}
