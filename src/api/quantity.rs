//! Exact parsing of the string quantities in manifests: durations, memory sizes, CPU counts.
//!
//! Manifests keep these as strings so nothing is lost to floats; Swarm wants integers.

/// A quantity string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: expected {expected}")]
pub struct QuantityError {
    /// The text given.
    pub value: String,
    /// What it should have been.
    pub what: &'static str,
    /// An example of a valid value.
    pub expected: &'static str,
}

/// Parses a Go-style duration (`30s`, `1m30s`, `1.5h`, `250ms`) into nanoseconds.
pub fn parse_duration_nanos(s: &str) -> Result<i64, QuantityError> {
    let err = || QuantityError {
        value: s.to_string(),
        what: "duration",
        expected: "a number with a unit ns, us, ms, s, m or h, e.g. \"30s\" or \"1m30s\"",
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err()),
        };
        total += decimal_times(num, scale).ok_or_else(err)?;
        rest = tail;
    }
    i64::try_from(total).map_err(|_| err())
}

/// Parses a memory size (`512M`, `1G`, `1Gi`, `100k`, `1024`) into bytes; units are binary, as Docker's.
pub fn parse_memory_bytes(s: &str) -> Result<i64, QuantityError> {
    let err = || QuantityError {
        value: s.to_string(),
        what: "memory size",
        expected: "a whole number with an optional unit b, k, m, g or t, e.g. \"512M\" or \"1G\"",
    };
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(err());
    }
    let (num, unit) = t.split_at(digits);
    let unit = unit.to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let scale: i128 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(err()),
    };
    let n: i128 = num.parse().map_err(|_| err())?;
    i64::try_from(n * scale).map_err(|_| err())
}

/// Parses a CPU count given as a decimal string (`"0.5"`, `"2"`) into nano-CPUs, exactly.
pub fn parse_nano_cpus(s: &str) -> Result<i64, QuantityError> {
    let err = || QuantityError {
        value: s.to_string(),
        what: "CPU count",
        expected: "a decimal number with at most 9 decimals, e.g. \"0.5\"",
    };
    let v = decimal_times(s.trim(), 1_000_000_000).ok_or_else(err)?;
    i64::try_from(v).map_err(|_| err())
}

/// `num * scale` for a decimal string, exactly; None when it is not a plain decimal or loses digits.
fn decimal_times(num: &str, scale: i128) -> Option<i128> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if int.len() > 20 || frac.len() > 18 {
        return None;
    }
    let int_v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut value = int_v.checked_mul(scale)?;
    if !frac.is_empty() {
        let frac_v: i128 = frac.parse().ok()?;
        let denom = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        let scaled = frac_v.checked_mul(scale)?;
        if scaled % denom != 0 {
            return None;
        }
        value = value.checked_add(scaled / denom)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration_nanos("30s"), Ok(30_000_000_000));
        assert_eq!(parse_duration_nanos("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration_nanos("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration_nanos("250ms"), Ok(250_000_000));
        assert!(parse_duration_nanos("30").is_err());
        assert!(parse_duration_nanos("s").is_err());
        assert!(parse_duration_nanos("3 days").is_err());
    }

    #[test]
    fn memory_uses_binary_units() {
        assert_eq!(parse_memory_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_memory_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_memory_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_memory_bytes("1024"), Ok(1024));
        assert!(parse_memory_bytes("1.5G").is_err());
        assert!(parse_memory_bytes("lots").is_err());
    }

    #[test]
    fn cpus_are_exact() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert!(parse_nano_cpus("0.0000000001").is_err());
        assert!(parse_nano_cpus("-1").is_err());
    }
}
