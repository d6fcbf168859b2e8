//! Label selectors (`-l`), as kubectl reads them: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
//! `a in (x,y)`, `a notin (x,y)`, joined by commas (all must hold).

use std::collections::BTreeMap;
use std::str::FromStr;

/// A parsed selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    /// True when every requirement holds for these labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn key(k: &str, whole: &str) -> Result<String, String> {
    let k = k.trim();
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("label selector {whole:?}: invalid key {k:?}"))
    }
}

fn set(values: &str, whole: &str) -> Result<Vec<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("label selector {whole:?}: a set needs parentheses: in (a,b)"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let r = if let Some((k, v)) = p.split_once("!=") {
                Requirement::NotEquals(key(k, s)?, v.trim().to_string())
            } else if let Some((k, v)) = p.split_once("==") {
                Requirement::Equals(key(k, s)?, v.trim().to_string())
            } else if let Some((k, v)) = p.split_once('=') {
                Requirement::Equals(key(k, s)?, v.trim().to_string())
            } else if let Some(k) = p.strip_prefix('!') {
                Requirement::NotExists(key(k, s)?)
            } else if let Some((k, v)) = p.split_once(" notin ") {
                Requirement::NotIn(key(k, s)?, set(v, s)?)
            } else if let Some((k, v)) = p.split_once(" in ") {
                Requirement::In(key(k, s)?, set(v, s)?)
            } else {
                Requirement::Exists(key(p, s)?)
            };
            requirements.push(r);
        }
        Ok(Selector { requirements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> Selector {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn equality_and_existence() {
        let l = labels(&[("tier", "front"), ("app", "web")]);
        assert!(sel("tier=front").matches(&l));
        assert!(sel("tier==front,app").matches(&l));
        assert!(!sel("tier!=front").matches(&l));
        assert!(sel("!missing").matches(&l));
        assert!(!sel("missing").matches(&l));
        assert!(sel("").matches(&l));
    }

    #[test]
    fn sets() {
        let l = labels(&[("tier", "front")]);
        assert!(sel("tier in (front,back)").matches(&l));
        assert!(!sel("tier notin (front, back)").matches(&l));
        assert!(sel("other notin (x)").matches(&l));
        assert!(sel("tier in (front,back),tier!=back").matches(&l));
    }

    #[test]
    fn bad_selectors_are_errors() {
        assert!("tier in front".parse::<Selector>().is_err());
        assert!("ti er=x".parse::<Selector>().is_err());
    }
}
