//! Naming objects on the command line: `KIND NAME...` or `KIND/NAME...`, as kubectl does.

use crate::api::{Kind, UnknownKind};
use crate::store::ObjectRef;

use super::CliError;

/// Parses a kind word (`service`, `svc`, `stacks`...) into a usage error when unknown.
pub fn kind(word: &str) -> Result<Kind, CliError> {
    word.parse()
        .map_err(|e: UnknownKind| CliError::usage(e.to_string()))
}

/// Objects named as `KIND NAME...` or `KIND/NAME...` (kinds may differ in the second form).
/// `Ok((Some(kind), []))` is a bare kind: all of that kind.
pub fn refs(words: &[String]) -> Result<(Option<Kind>, Vec<ObjectRef>), CliError> {
    let Some(first) = words.first() else {
        return Err(CliError::usage(
            "name a kind (configuration, environment, stack, service) and objects",
        ));
    };
    if first.contains('/') {
        let refs = words
            .iter()
            .map(|w| {
                if !w.contains('/') {
                    return Err(CliError::usage(format!(
                        "{w:?}: mix no KIND/NAME with plain names; write every object as KIND/NAME"
                    )));
                }
                w.parse::<ObjectRef>().map_err(CliError::usage)
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((None, refs));
    }
    let k = kind(first)?;
    let refs = words[1..]
        .iter()
        .map(|n| {
            if n.contains('/') {
                Err(CliError::usage(format!(
                    "{n:?}: after a kind, give plain names (or write KIND/NAME alone)"
                )))
            } else {
                Ok(ObjectRef {
                    kind: k,
                    name: n.clone(),
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((Some(k), refs))
}

/// What `kargo get` names: kinds (`services,stacks`, `all`, or one kind) and, optionally,
/// objects (`KIND NAME...` for one kind, `KIND/NAME...` across kinds). The kinds come in the
/// order given (`all`: configurations, environments, stacks, services), each once.
pub fn kinds_and_refs(words: &[String]) -> Result<(Vec<Kind>, Vec<ObjectRef>), CliError> {
    let Some(first) = words.first() else {
        return Err(CliError::usage(
            "name a kind (configuration, environment, stack, service, or `all`)",
        ));
    };
    if first == "all" || (first.contains(',') && !first.contains('/')) {
        if words.len() > 1 {
            return Err(CliError::usage(
                "with several kinds, name objects as KIND/NAME (e.g. service/web stack/shop)",
            ));
        }
        let mut kinds = Vec::new();
        for word in first.split(',') {
            let more: Vec<Kind> = if word == "all" {
                Kind::ALL.to_vec()
            } else {
                vec![kind(word)?]
            };
            for k in more {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        return Ok((kinds, Vec::new()));
    }
    let (k, refs) = refs(words)?;
    let kinds = match k {
        Some(k) => vec![k],
        None => {
            let mut kinds = Vec::new();
            for r in &refs {
                if !kinds.contains(&r.kind) {
                    kinds.push(r.kind);
                }
            }
            kinds
        }
    };
    Ok((kinds, refs))
}

/// Like [`refs`], but all objects must be of one kind: the kind and the names.
pub fn one_kind(words: &[String]) -> Result<(Kind, Vec<String>), CliError> {
    let (k, refs) = refs(words)?;
    let k = match (k, refs.first()) {
        (Some(k), _) => k,
        (None, Some(r)) => r.kind,
        (None, None) => return Err(CliError::usage("name a kind")),
    };
    if let Some(other) = refs.iter().find(|r| r.kind != k) {
        return Err(CliError::usage(format!(
            "{other}: give objects of one kind at a time"
        )));
    }
    Ok((k, refs.into_iter().map(|r| r.name).collect()))
}

/// Exactly one object, of one of the `allowed` kinds: its kind and name. `one` is the
/// usage message when several or none are named; `wrong` words the refusal of a kind.
pub fn one_of(
    words: &[String],
    allowed: &[Kind],
    one: &str,
    wrong: impl FnOnce(Kind) -> String,
) -> Result<(Kind, String), CliError> {
    let (kind, names) = one_kind(words)?;
    let [name] = names.as_slice() else {
        return Err(CliError::usage(one));
    };
    if !allowed.contains(&kind) {
        return Err(CliError::usage(wrong(kind)));
    }
    Ok((kind, name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_takes_lists_of_kinds_all_and_objects_across_kinds() {
        let kinds = |s: &str| kinds_and_refs(&words(s)).map(|(k, r)| (k, r.len()));
        assert_eq!(
            kinds("svc,stacks").ok(),
            Some((vec![Kind::Service, Kind::Stack], 0))
        );
        assert_eq!(kinds("all").ok(), Some((Kind::ALL.to_vec(), 0)));
        assert_eq!(kinds("svc,all").ok().map(|(k, _)| k.len()), Some(4));
        assert_eq!(kinds("svc web db").ok(), Some((vec![Kind::Service], 2)));
        assert_eq!(
            kinds("svc/web stack/shop svc/db").ok(),
            Some((vec![Kind::Service, Kind::Stack], 3))
        );
        assert!(
            kinds("svc,stacks web").is_err(),
            "names need KIND/NAME here"
        );
        assert!(kinds("svc,pods").is_err());
        assert!(kinds("").is_err());
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn both_forms_parse() {
        let (k, names) = one_kind(&words("svc web db")).unwrap_or((Kind::Stack, vec![]));
        assert_eq!((k, names), (Kind::Service, vec!["web".into(), "db".into()]));
        let (k, names) = one_kind(&words("stack/apps")).unwrap_or((Kind::Service, vec![]));
        assert_eq!((k, names), (Kind::Stack, vec!["apps".into()]));
        let (k, r) = refs(&words("stack/apps service/web")).unwrap_or((None, vec![]));
        assert_eq!((k, r.len()), (None, 2));
    }

    #[test]
    fn mixed_or_unknown_forms_are_usage_errors() {
        assert!(refs(&words("stack/apps web")).is_err());
        assert!(refs(&words("svc stack/apps")).is_err());
        assert!(refs(&words("pods x")).is_err());
        assert!(one_kind(&words("stack/a service/b")).is_err());
    }
}
