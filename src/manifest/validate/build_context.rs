//! `kargo validate`'s check that a Service's build context exists: a relative context is
//! read from the folder of the file that holds the Service, as `kargo build -f` reads it.
//! Stdin has no folder: its contexts are read from the working directory.

use std::path::Path;

use super::{Diagnostic, Report, Rule};
use crate::api::Kind;
use crate::manifest::interpolate::has_interpolation;

/// Adds a diagnostic, at the `context` line, for each Service of the report's objects (it
/// must have kept them) whose build context is not a folder. A context written with
/// `${VAR}` or as a URL is not checked (the Environment or Docker gives it meaning).
pub fn check_build_contexts(report: &mut Report) {
    let mut found = Vec::new();
    for (i, file) in report.files.iter().enumerate() {
        let folder = match file.file.as_str() {
            "-" => Path::new(".").to_path_buf(),
            name => Path::new(name)
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf(),
        };
        for (document, reference) in &file.objects {
            let Some(name) = reference.strip_prefix("service/") else {
                continue;
            };
            let Some(context) = report
                .objects
                .iter()
                .find(|o| o.kind == Kind::Service && o.metadata.name == name)
                .and_then(|o| o.spec.pointer("/build/context"))
                .and_then(|c| c.as_str())
            else {
                continue;
            };
            if has_interpolation(context) || context.contains("://") {
                continue;
            }
            let full = folder.join(context);
            if full.is_dir() {
                continue;
            }
            let why = if full.exists() {
                "is not a folder"
            } else {
                "does not exist"
            };
            found.push((i, *document, reference.clone(), format!(
                "the build context {} {why} (a relative context is relative to this file's folder)",
                full.display()
            )));
        }
    }
    for (i, document, reference, message) in found {
        let file = &mut report.files[i];
        let (line, column) = crate::manifest::validate::position_in_file(
            &file.file,
            document,
            "/spec/build/context",
        );
        file.diagnostics.push(Diagnostic {
            file: file.file.clone(),
            line,
            column,
            document: Some(document),
            object: Some(reference),
            path: "spec.build.context".into(),
            rule: Rule::Reference,
            message,
        });
        crate::manifest::validate::finish_counts(file);
    }
}
