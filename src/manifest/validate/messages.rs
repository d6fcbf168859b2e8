//! Plain-words wording of what was expected: types, patterns, suggestions.

use serde_json::Value;

use crate::api::schema::{
    CONSTRAINT_PATTERN, FILE_NAME_PATTERN, IMAGE_PATTERN, INTERPOLATION_ALTERNATIVE, NAME_PATTERN,
    NETWORK_PATTERN, PATH_PATTERN, VARIABLE_PATTERN,
};
use crate::api::{CPUS_PATTERN, DURATION_PATTERN, MEMORY_PATTERN};

/// Longest quoted value shown in a message.
const SHOW_MAX: usize = 60;

/// A value as a message names it: `the number 4.2`, `the string "x"`, `a list`.
pub(crate) fn describe(value: &Value, source: Option<&str>) -> String {
    match value {
        Value::Null => "null (an empty value)".into(),
        Value::Bool(b) => format!(
            "the boolean {}",
            source.unwrap_or(if *b { "true" } else { "false" })
        ),
        Value::Number(n) => {
            let shown = n.to_string();
            match source {
                Some(text) if text != shown => {
                    format!("the number {text} (YAML reads it as {shown})")
                }
                _ => format!("the number {shown}"),
            }
        }
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

/// A string in double quotes, shortened when long.
pub(crate) fn quote(s: &str) -> String {
    if s.chars().count() > SHOW_MAX {
        let short: String = s.chars().take(SHOW_MAX).collect();
        format!("{:?}…", short)
    } else {
        format!("{s:?}")
    }
}

/// What a schema's `type` asks for, in words: `a string`, `an integer or null`.
pub(crate) fn expected_type(schema: &Value) -> String {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let words: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "string" => "a string",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            "array" => "a list",
            "object" => "a map",
            _ => "a value",
        })
        .collect();
    if words.is_empty() {
        "another type".into()
    } else {
        words.join(" or ")
    }
}

/// The meaning of a schema pattern, for "is not a duration: expected ...".
pub(crate) fn pattern_meaning(pattern: &str) -> String {
    match pattern_text(pattern) {
        Some((what, expected)) => format!("is not {what}: expected {expected}"),
        None => format!("does not match the pattern {pattern}"),
    }
}

/// What a schema pattern describes and what it expects, in words: `("a duration", "a
/// number with a unit ...")`; `None` for a pattern kargo does not know.
pub fn pattern_text(pattern: &str) -> Option<(&'static str, &'static str)> {
    Some(match pattern_core(pattern) {
        p if p == NAME_PATTERN => (
            "a valid name",
            "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
        ),
        p if p == DURATION_PATTERN => (
            "a duration",
            "a number with a unit ns, us, ms, s, m or h, such as \"30s\" or \"1m30s\"",
        ),
        p if p == MEMORY_PATTERN => (
            "a memory size",
            "a whole number with an optional unit b, k, m, g or t, such as \"512M\" or \"1G\"",
        ),
        p if p == CPUS_PATTERN => (
            "a CPU count",
            "a decimal string with at most 9 decimals, such as \"0.5\" or \"2\"",
        ),
        p if p == CONSTRAINT_PATTERN => (
            "a placement constraint",
            "`node.<attribute>==<value>` (or `!=`) with attribute id, hostname, role, platform.os, platform.arch or labels.<name>, or `engine.labels.<name>`, such as `node.role==manager`",
        ),
        p if p == FILE_NAME_PATTERN => (
            "a valid file name",
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 53 characters",
        ),
        p if p == NETWORK_PATTERN => (
            "a network name",
            "`front`, `back` or a Docker network name (letters, digits, '-', '_' and '.')",
        ),
        p if p == IMAGE_PATTERN => (
            "an image reference",
            "`name:tag` or `name@digest`, without spaces",
        ),
        p if p == VARIABLE_PATTERN => (
            "a variable name",
            "letters, digits and '_', not starting with a digit",
        ),
        p if p == PATH_PATTERN => ("an absolute path", "a container path starting with '/'"),
        "^0?[0-7]{3}$" => ("a file mode", "an octal string such as \"0440\""),
        r"^(0(\.[0-9]+)?|1(\.0+)?)$" => (
            "a ratio",
            "a decimal string from \"0\" to \"1\", such as \"0.1\"",
        ),
        _ => return None,
    })
}

/// A schema pattern without the stored mode's `${VAR}` alternative: the kargo constant it came from.
pub(crate) fn pattern_core(pattern: &str) -> &str {
    pattern
        .strip_suffix(INTERPOLATION_ALTERNATIVE)
        .and_then(|p| p.strip_prefix("(?:"))
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or(pattern)
}

/// The candidate closest to `word` when it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = if candidate.to_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &candidate.to_lowercase())
        };
        let limit = (word.chars().count().max(candidate.chars().count()) * 2 / 5).max(1);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance with adjacent transpositions (optimal string alignment), over at most 64
/// characters of each word, so its cost stays small whatever the input.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        if let Some(first) = row.first_mut() {
            *first = i;
        }
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// `a, b or c` in backquotes.
pub(crate) fn one_of<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("`{s}`")).collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `; did you mean `x`?` or nothing.
pub(crate) fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!("; did you mean `{s}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_suggestions_and_strangers_do_not() {
        let fields = ["image", "command", "args", "env", "ports"];
        assert_eq!(closest("imag", fields), Some("image"));
        assert_eq!(closest("Image", fields), Some("image"));
        assert_eq!(closest("port", fields), Some("ports"));
        assert_eq!(closest("replicas", fields), None);
        assert_eq!(closest("hots", ["ingress", "host"]), Some("host"));
        assert_eq!(closest("app.cfg", ["app.conf"]), Some("app.conf"));
    }

    #[test]
    fn numbers_show_their_source_text() {
        let v = serde_json::json!(1.1);
        assert_eq!(
            describe(&v, Some("1.10")),
            "the number 1.10 (YAML reads it as 1.1)"
        );
        assert_eq!(describe(&v, Some("1.1")), "the number 1.1");
    }

    #[test]
    fn stored_patterns_keep_their_meaning() {
        let wrapped = format!("(?:{DURATION_PATTERN}){INTERPOLATION_ALTERNATIVE}");
        assert!(pattern_meaning(&wrapped).starts_with("is not a duration"));
    }
}
