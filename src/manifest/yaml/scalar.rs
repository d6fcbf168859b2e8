//! Turning scalar text into JSON values by the YAML 1.2 core schema, as serde_yaml does.

use saphyr_parser::{ScalarStyle, Tag};
use serde_json::{Number, Value};

use super::error::{Position, YamlError};

/// Why a scalar has no JSON value; turned into a [`YamlError`] once its position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    NonFinite,
    OutOfRange,
    Invalid(String),
    UnsupportedTag(String),
}

impl Problem {
    /// The error for a scalar with text `text` at `position`.
    pub(crate) fn into_error(self, position: Position, text: &str) -> YamlError {
        match self {
            Problem::NonFinite => YamlError::NonFiniteNumber {
                position,
                text: text.to_owned(),
            },
            Problem::OutOfRange => YamlError::IntegerOutOfRange {
                position,
                text: text.to_owned(),
            },
            Problem::Invalid(tag) => YamlError::InvalidTaggedValue {
                position,
                tag,
                text: text.to_owned(),
            },
            Problem::UnsupportedTag(tag) => YamlError::UnsupportedTag { position, tag },
        }
    }
}

/// What a tag asks for.
pub(crate) enum TagKind<'t> {
    /// `!`: "not plain", a string.
    NonSpecific,
    /// `!!name`: a tag of the YAML core schema.
    Core(&'t str),
    /// Anything else, as written.
    Other(String),
}

/// Classifies a tag the parser reported.
pub(crate) fn classify(tag: &Tag) -> TagKind<'_> {
    if tag.is_yaml_core_schema() {
        TagKind::Core(tag.suffix.as_str())
    } else if (tag.handle.is_empty() && tag.suffix == "!")
        || (tag.handle == "!" && tag.suffix.is_empty())
    {
        TagKind::NonSpecific
    } else {
        TagKind::Other(format!("{}{}", tag.handle, tag.suffix))
    }
}

/// Checks a tag on a list (`seq`) or map (`map`): only the matching core tag is accepted.
pub(crate) fn check_collection_tag(tag: Option<&Tag>, expected: &str) -> Result<(), Problem> {
    match tag.map(classify) {
        None | Some(TagKind::NonSpecific) => Ok(()),
        Some(TagKind::Core(suffix)) if suffix == expected => Ok(()),
        Some(TagKind::Core(suffix)) => Err(Problem::UnsupportedTag(format!("!!{suffix}"))),
        Some(TagKind::Other(tag)) => Err(Problem::UnsupportedTag(tag)),
    }
}

/// Checks a tag on a map key: keys are taken as their text, so only unknown tags are refused.
pub(crate) fn check_key_tag(tag: Option<&Tag>) -> Result<(), Problem> {
    match tag.map(classify) {
        None | Some(TagKind::NonSpecific) => Ok(()),
        Some(TagKind::Core("str" | "int" | "float" | "bool" | "null")) => Ok(()),
        Some(TagKind::Core(suffix)) => Err(Problem::UnsupportedTag(format!("!!{suffix}"))),
        Some(TagKind::Other(tag)) => Err(Problem::UnsupportedTag(tag)),
    }
}

/// The JSON value of a scalar: plain untagged scalars by the core schema, quoted and block
/// scalars as strings, core-tagged scalars as their tag says.
pub(crate) fn resolve(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, Problem> {
    match tag.map(classify) {
        None if style == ScalarStyle::Plain => resolve_plain(text),
        None | Some(TagKind::NonSpecific) => Ok(Value::String(text.to_owned())),
        Some(TagKind::Core(suffix)) => resolve_core(text, suffix),
        Some(TagKind::Other(tag)) => Err(Problem::UnsupportedTag(tag)),
    }
}

/// A plain scalar: null, boolean, integer, float, or else a string.
fn resolve_plain(text: &str) -> Result<Value, Problem> {
    Ok(match plain(text)? {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Number(n) => Value::Number(n),
        Plain::Str(s) => Value::String(s.to_owned()),
    })
}

/// What a plain untagged scalar is, its text borrowed when it is a string.
pub(crate) enum Plain<'t> {
    Null,
    Bool(bool),
    Number(Number),
    Str(&'t str),
}

/// A plain untagged scalar by the core schema, without copying its text (the fast reader's
/// tree keeps strings as slices of the file).
pub(crate) fn plain(text: &str) -> Result<Plain<'_>, Problem> {
    if is_null(text) {
        return Ok(Plain::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Plain::Bool(b));
    }
    match parse_int(text) {
        Some(Ok(n)) => return Ok(Plain::Number(n)),
        Some(Err(())) => return Err(Problem::OutOfRange),
        None => {}
    }
    if !digits_but_not_number(text) {
        match parse_float(text) {
            Some(Ok(n)) => return Ok(Plain::Number(n)),
            Some(Err(())) => return Err(Problem::NonFinite),
            None => {}
        }
    }
    Ok(Plain::Str(text))
}

/// A scalar with a core-schema tag.
fn resolve_core(text: &str, suffix: &str) -> Result<Value, Problem> {
    let invalid = || Problem::Invalid(format!("!!{suffix}"));
    match suffix {
        "str" => Ok(Value::String(text.to_owned())),
        "null" if text.is_empty() || is_null(text) => Ok(Value::Null),
        "bool" => parse_bool(text).map(Value::Bool).ok_or_else(invalid),
        "int" => match parse_int(text) {
            Some(Ok(n)) => Ok(Value::Number(n)),
            Some(Err(())) => Err(Problem::OutOfRange),
            None => Err(invalid()),
        },
        "float" => match parse_float(text) {
            Some(Ok(n)) => Ok(Value::Number(n)),
            Some(Err(())) => Err(Problem::NonFinite),
            None => Err(invalid()),
        },
        "null" => Err(invalid()),
        other => Err(Problem::UnsupportedTag(format!("!!{other}"))),
    }
}

/// `~`, `null`, `Null`, `NULL` and the empty scalar.
fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// `true`/`false` in the three spellings of the core schema.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Leading zeros followed by digits (`0123`): a string by YAML 1.2, neither integer nor float.
fn digits_but_not_number(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An integer (decimal, `0x`, `0o`, `0b`, optional sign): `None` if the text is not one,
/// `Some(Err)` if it is one but does not fit in `i64`/`u64`.
fn parse_int(text: &str) -> Option<Result<Number, ()>> {
    let (negative, unsigned) = if let Some(rest) = text.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix('+') {
        (false, rest)
    } else {
        (false, text)
    };
    let (radix, digits) = if let Some(d) = unsigned.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = unsigned.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = unsigned.strip_prefix("0b") {
        (2, d)
    } else {
        (10, unsigned)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix == 10 && digits_but_not_number(digits) {
        return None;
    }
    let Ok(magnitude) = u128::from_str_radix(digits, radix) else {
        return Some(Err(()));
    };
    let number = if negative {
        0i128
            .checked_sub_unsigned(magnitude)
            .and_then(|n| i64::try_from(n).ok())
            .map(Number::from)
    } else {
        u64::try_from(magnitude).ok().map(Number::from)
    };
    Some(number.ok_or(()))
}

/// A float as serde_yaml reads one: `None` if the text is not one, `Some(Err)` for
/// `.inf`/`.nan`, which JSON cannot hold.
fn parse_float(text: &str) -> Option<Result<Number, ()>> {
    // Most scalars are words: a float starts with a digit, a sign or a dot (Rust's parser
    // also reads `inf` and `nan`, which are not finite and so no float here either).
    if !text
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    if matches!(unsigned, ".inf" | ".Inf" | ".INF")
        || matches!(text, "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN" | ".NAN")
    {
        return Some(Err(()));
    }
    match unsigned.parse::<f64>() {
        Ok(f) if f.is_finite() => Number::from_f64(f).map(Ok),
        _ => None,
    }
}
