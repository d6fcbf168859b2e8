//! kubectl's JSONPath templates, for `get -o jsonpath=...` and `wait --for=jsonpath=...`.
//!
//! Supported: text with `{...}` actions; paths `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`,
//! `[1:3]`, `..name` (recursive), filters `[?(@.type=="Ready")]` (`==`, `!=`, `<`, `>`,
//! or `[?(@.x)]` for presence); `{range PATH}...{end}`; string literals `{"\n"}`.
//! A missing field prints nothing, as kubectl does by default.

use serde_json::Value;

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Recursive(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>),
    Filter(Vec<Step>, Option<(Op, Value)>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
}

/// A template that does not parse, with why.
#[derive(Debug, thiserror::Error)]
#[error("jsonpath {template:?}: {message}")]
pub struct JsonPathError {
    /// The template as given.
    pub template: String,
    /// What is wrong.
    pub message: String,
}

impl Template {
    /// Parses a template; a bare path without braces (`.status.phase`) is accepted too.
    pub fn parse(src: &str) -> Result<Template, JsonPathError> {
        let err = |message: String| JsonPathError {
            template: src.to_string(),
            message,
        };
        let trimmed = src.trim();
        let text =
            if !trimmed.contains('{') && (trimmed.starts_with('.') || trimmed.starts_with('[')) {
                format!("{{{trimmed}}}")
            } else {
                src.to_string()
            };
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let close =
                matching_brace(&rest[open..]).ok_or_else(|| err("unclosed '{'".into()))? + open;
            let action = rest[open + 1..close].trim();
            rest = &rest[close + 1..];
            if let Some(path) = action.strip_prefix("range ") {
                let steps = parse_path(path.trim()).map_err(err)?;
                stack.push((steps, std::mem::take(&mut nodes)));
            } else if action == "end" {
                let (steps, outer) = stack
                    .pop()
                    .ok_or_else(|| err("{end} without {range}".into()))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(steps, body));
            } else if action.starts_with('"') || action.starts_with('\'') {
                nodes.push(Node::Text(unquote(action).map_err(err)?));
            } else {
                nodes.push(Node::Path(parse_path(action).map_err(err)?));
            }
        }
        if !stack.is_empty() {
            return Err(err("{range} without {end}".into()));
        }
        Ok(Template { nodes })
    }

    /// Renders the template over a document.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, root, &mut out);
        out
    }

    /// The values the template's first path selects (for `wait --for=jsonpath`).
    pub fn select(&self, root: &Value) -> Vec<Value> {
        self.nodes
            .iter()
            .find_map(|n| match n {
                Node::Path(steps) => Some(eval(steps, root)),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// A value as a template prints it: strings raw, everything else as compact JSON.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_nodes(nodes: &[Node], current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let values = eval(steps, current);
                let shown: Vec<String> = values.iter().map(display).collect();
                out.push_str(&shown.join(" "));
            }
            Node::Range(steps, body) => {
                for v in eval(steps, current) {
                    render_nodes(body, &v, out);
                }
            }
        }
    }
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Result<String, String> {
    let q = s.chars().next().unwrap_or('"');
    let inner = s
        .strip_prefix(q)
        .and_then(|s| s.strip_suffix(q))
        .ok_or_else(|| format!("unterminated string {s}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_path(src: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    if chars.first() == Some(&'@') || chars.first() == Some(&'$') {
        i = 1;
    }
    while i < chars.len() {
        match chars[i] {
            '.' if chars.get(i + 1) == Some(&'.') => {
                i += 2;
                let name = take_name(&chars, &mut i);
                if name.is_empty() {
                    return Err(format!("'..' needs a field name in {src:?}"));
                }
                steps.push(Step::Recursive(name));
            }
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'*') {
                    i += 1;
                    steps.push(Step::Wildcard);
                    continue;
                }
                let name = take_name(&chars, &mut i);
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = find_bracket_end(&chars, i)
                    .ok_or_else(|| format!("unclosed '[' in {src:?}"))?;
                let inner: String = chars[i + 1..end].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = end + 1;
            }
            c if c.is_whitespace() => i += 1,
            c => return Err(format!("unexpected {c:?} in {src:?}")),
        }
    }
    Ok(steps)
}

fn take_name(chars: &[char], i: &mut usize) -> String {
    let mut name = String::new();
    while let Some(&c) = chars.get(*i) {
        if c == '\\'
            && let Some(&next) = chars.get(*i + 1)
        {
            name.push(next);
            *i += 2;
            continue;
        }
        if c == '.' || c == '[' || c.is_whitespace() {
            break;
        }
        name.push(c);
        *i += 1;
    }
    name
}

fn find_bracket_end(chars: &[char], start: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(start) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        return Ok(Step::Field(unquote(inner)?));
    }
    if let Some(filter) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return parse_filter(filter.trim());
    }
    if let Some((a, b)) = inner.split_once(':') {
        let num = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| format!("bad slice bound {s:?}"))
            }
        };
        return Ok(Step::Slice(num(a)?, num(b)?));
    }
    inner
        .parse()
        .map(Step::Index)
        .map_err(|_| format!("bad index [{inner}]"))
}

fn parse_filter(f: &str) -> Result<Step, String> {
    for (token, op) in [("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)] {
        if let Some((left, right)) = f.split_once(token) {
            let steps = parse_path(left.trim())?;
            let right = right.trim();
            let value = if right.starts_with('"') || right.starts_with('\'') {
                Value::String(unquote(right)?)
            } else {
                serde_json::from_str(right).unwrap_or_else(|_| Value::String(right.to_string()))
            };
            return Ok(Step::Filter(steps, Some((op, value))));
        }
    }
    Ok(Step::Filter(parse_path(f)?, None))
}

fn eval(steps: &[Step], root: &Value) -> Vec<Value> {
    let mut current = vec![root.clone()];
    for step in steps {
        let mut next = Vec::new();
        for v in &current {
            apply_step(step, v, &mut next);
        }
        current = next;
    }
    current
}

fn index(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len + i } else { i };
    (0..len)
        .contains(&i)
        .then(|| usize::try_from(i).ok())
        .flatten()
}

fn apply_step(step: &Step, v: &Value, out: &mut Vec<Value>) {
    match step {
        Step::Field(name) => {
            if let Some(x) = v.get(name) {
                out.push(x.clone());
            }
        }
        Step::Recursive(name) => collect_recursive(name, v, out),
        Step::Index(i) => {
            if let Some(a) = v.as_array()
                && let Some(x) = index(a.len(), *i).and_then(|i| a.get(i))
            {
                out.push(x.clone());
            }
        }
        Step::Wildcard => match v {
            Value::Array(a) => out.extend(a.iter().cloned()),
            Value::Object(m) => out.extend(m.values().cloned()),
            _ => {}
        },
        Step::Slice(from, to) => {
            if let Some(a) = v.as_array() {
                let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
                let clamp = |b: i64| if b < 0 { (len + b).max(0) } else { b.min(len) };
                let from = clamp(from.unwrap_or(0));
                let to = clamp(to.unwrap_or(len));
                for i in from..to {
                    if let Some(x) = usize::try_from(i).ok().and_then(|i| a.get(i)) {
                        out.push(x.clone());
                    }
                }
            }
        }
        Step::Filter(path, test) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            for item in items {
                let found = eval(path, item);
                let keep = match test {
                    None => !found.is_empty(),
                    Some((op, want)) => found.iter().any(|f| compare(f, *op, want)),
                };
                if keep {
                    out.push(item.clone());
                }
            }
        }
    }
}

fn compare(found: &Value, op: Op, want: &Value) -> bool {
    match op {
        Op::Eq => found == want || display(found) == display(want),
        Op::Ne => !(found == want || display(found) == display(want)),
        Op::Lt | Op::Gt => match (found.as_f64(), want.as_f64()) {
            (Some(a), Some(b)) => {
                if op == Op::Lt {
                    a < b
                } else {
                    a > b
                }
            }
            _ => false,
        },
    }
}

fn collect_recursive(name: &str, v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(name) {
                out.push(x.clone());
            }
            for child in m.values() {
                collect_recursive(name, child, out);
            }
        }
        Value::Array(a) => {
            for child in a {
                collect_recursive(name, child, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t)
            .map(|t| t.render(v))
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn fields_indexes_and_wildcards() {
        let v = json!({"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]});
        assert_eq!(render("{.items[*].metadata.name}", &v), "a b");
        assert_eq!(render("{.items[-1].metadata.name}", &v), "b");
        assert_eq!(render("{.items[0:1].metadata.name}", &v), "a");
        assert_eq!(render(".items[0].metadata.name", &v), "a");
        assert_eq!(render("{..name}", &v), "a b");
    }

    #[test]
    fn range_and_literals() {
        let v = json!({"items": [{"n": 1}, {"n": 2}]});
        assert_eq!(render(r#"{range .items[*]}{.n}{"\n"}{end}"#, &v), "1\n2\n");
        assert_eq!(render("n={.items[0].n}!", &v), "n=1!");
    }

    #[test]
    fn filters_select_conditions() {
        let v = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}
        ]}});
        assert_eq!(
            render(r#"{.status.conditions[?(@.type=="Ready")].status}"#, &v),
            "True"
        );
        assert_eq!(
            render("{.status.conditions[?(@.type!='Ready')].type}", &v),
            "Other"
        );
    }

    #[test]
    fn quoted_keys_with_dots_and_missing_fields() {
        let v = json!({"metadata": {"labels": {"a.b/c": "x"}}});
        assert_eq!(render("{.metadata.labels['a.b/c']}", &v), "x");
        assert_eq!(render("{.metadata.labels.a\\.b/c}", &v), "x");
        assert_eq!(render("{.nope.nothing}", &v), "");
    }

    #[test]
    fn non_strings_print_as_json() {
        let v = json!({"spec": {"deploy": {"replicas": 3}, "env": {"A": "1"}}});
        assert_eq!(render("{.spec.deploy.replicas}", &v), "3");
        assert_eq!(render("{.spec.env}", &v), r#"{"A":"1"}"#);
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{range .a}x").is_err());
        assert!(Template::parse("{.a[x]}").is_err());
    }
}
