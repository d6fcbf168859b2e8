//! Exact parsing of the string quantities in manifests: durations, memory sizes, CPU counts.
//!
//! Manifests keep these as strings so nothing is lost to floats; Swarm wants integers.

/// A quantity string that does not parse, or names more than kargo (and Swarm) can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a quantity of this kind at all.
    #[error("{value:?} is not a valid {what}: expected {expected}")]
    Invalid {
        /// The text given.
        value: String,
        /// What it should have been.
        what: &'static str,
        /// An example of a valid value.
        expected: &'static str,
    },
    /// A well-formed quantity past what a 64-bit count of its unit holds.
    #[error("{what} {value:?} is too large: at most {max}")]
    TooLarge {
        /// The text given.
        value: String,
        /// What it is.
        what: &'static str,
        /// The largest value, written as a quantity.
        max: &'static str,
    },
}

/// Why a decimal did not scale.
enum Scale {
    /// Not a plain decimal, or digits would be lost.
    Invalid,
    /// Past an `i64`.
    TooLarge,
}

/// The largest duration: `i64::MAX` nanoseconds, in whole hours.
const MAX_DURATION: &str = "2562047h";
/// The largest memory size: `i64::MAX` bytes, in whole tebibytes.
const MAX_MEMORY: &str = "8388607T";
/// The largest CPU count: `i64::MAX` nano-CPUs, in whole CPUs.
const MAX_CPUS: &str = "9223372036";

/// Parses a Go-style duration (`30s`, `1m30s`, `1.5h`, `250ms`) into nanoseconds.
pub fn parse_duration_nanos(s: &str) -> Result<i64, QuantityError> {
    let err = || QuantityError::Invalid {
        value: s.to_string(),
        what: "duration",
        expected: "a number with a unit ns, us, ms, s, m or h, e.g. \"30s\" or \"1m30s\"",
    };
    let too_large = || QuantityError::TooLarge {
        value: s.to_string(),
        what: "duration",
        max: MAX_DURATION,
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: i64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(err()),
        };
        let part = match decimal_times(num, scale) {
            Ok(v) => v,
            Err(Scale::Invalid) => return Err(err()),
            Err(Scale::TooLarge) => return Err(too_large()),
        };
        total = total.checked_add(part).ok_or_else(too_large)?;
        rest = tail;
    }
    Ok(total)
}

/// Parses a memory size (`512M`, `1G`, `1Gi`, `100k`, `1024`) into bytes; units are binary, as Docker's.
pub fn parse_memory_bytes(s: &str) -> Result<i64, QuantityError> {
    let err = || QuantityError::Invalid {
        value: s.to_string(),
        what: "memory size",
        expected: "a whole number with an optional unit b, k, m, g or t, e.g. \"512M\" or \"1G\"",
    };
    let too_large = || QuantityError::TooLarge {
        value: s.to_string(),
        what: "memory size",
        max: MAX_MEMORY,
    };
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(err());
    }
    let (num, unit) = t.split_at(digits);
    let unit = unit.to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let scale: i64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(err()),
    };
    // Only digits are left, so a parse failure means too many of them.
    let n: i64 = num.parse().map_err(|_| too_large())?;
    n.checked_mul(scale).ok_or_else(too_large)
}

/// Parses a CPU count given as a decimal string (`"0.5"`, `"2"`) into nano-CPUs, exactly.
pub fn parse_nano_cpus(s: &str) -> Result<i64, QuantityError> {
    match decimal_times(s.trim(), 1_000_000_000) {
        Ok(v) => Ok(v),
        Err(Scale::Invalid) => Err(QuantityError::Invalid {
            value: s.to_string(),
            what: "CPU count",
            expected: "a decimal number with at most 9 decimals, e.g. \"0.5\"",
        }),
        Err(Scale::TooLarge) => Err(QuantityError::TooLarge {
            value: s.to_string(),
            what: "CPU count",
            max: MAX_CPUS,
        }),
    }
}

/// `num * scale` for a decimal string, exactly, in an `i64`.
fn decimal_times(num: &str, scale: i64) -> Result<i64, Scale> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(Scale::Invalid);
    }
    if !int.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(Scale::Invalid);
    }
    // Digits a scale of at most 10^13 can keep (more would be lost, or overflow).
    if frac.len() > 18 {
        return Err(Scale::Invalid);
    }
    let int = int.trim_start_matches('0');
    let int_v: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| Scale::TooLarge)?
    };
    let mut value = int_v.checked_mul(scale).ok_or(Scale::TooLarge)?;
    if !frac.is_empty() {
        // In i128: 18 digits times a scale of 3.6e12 does not fit an i64, but fits there.
        let frac_v: i128 = frac.parse().map_err(|_| Scale::Invalid)?;
        let digits = u32::try_from(frac.len()).map_err(|_| Scale::Invalid)?;
        let denom = 10i128.checked_pow(digits).ok_or(Scale::Invalid)?;
        let scaled = frac_v
            .checked_mul(i128::from(scale))
            .ok_or(Scale::Invalid)?;
        if scaled % denom != 0 {
            return Err(Scale::Invalid);
        }
        let part = i64::try_from(scaled / denom).map_err(|_| Scale::TooLarge)?;
        value = value.checked_add(part).ok_or(Scale::TooLarge)?;
    }
    Ok(value)
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

    #[test]
    fn a_memory_size_past_64_bits_is_too_large_not_zero() {
        // 2^88 T wrapped to 0 ("no limit") in 128-bit arithmetic.
        let e = parse_memory_bytes("309485009821345068724781056T");
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err(
                "memory size \"309485009821345068724781056T\" is too large: at most 8388607T"
                    .to_string()
            )
        );
        assert_eq!(parse_memory_bytes("8388607T"), Ok(8_388_607 << 40));
        assert!(matches!(
            parse_memory_bytes("8388608T"),
            Err(QuantityError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_memory_bytes(&"9".repeat(60)),
            Err(QuantityError::TooLarge { .. })
        ));
        assert_eq!(parse_memory_bytes("9223372036854775807"), Ok(i64::MAX));
    }

    #[test]
    fn a_duration_past_64_bits_is_too_large() {
        assert!(parse_duration_nanos("2562047h").is_ok());
        for big in ["2562048h", "99999999999999999999999h", "2562047h2562047h"] {
            assert!(
                matches!(
                    parse_duration_nanos(big),
                    Err(QuantityError::TooLarge { .. })
                ),
                "{big}"
            );
        }
        let many = "2562047h".repeat(100_000);
        assert!(matches!(
            parse_duration_nanos(&many),
            Err(QuantityError::TooLarge { .. })
        ));
        assert_eq!(parse_duration_nanos("0001s"), Ok(1_000_000_000));
    }

    #[test]
    fn a_cpu_count_past_64_bits_is_too_large() {
        assert_eq!(parse_nano_cpus("9223372036"), Ok(9_223_372_036_000_000_000));
        assert!(matches!(
            parse_nano_cpus("9223372037"),
            Err(QuantityError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_nano_cpus("123456789012345678901234567890.5"),
            Err(QuantityError::TooLarge { .. })
        ));
    }
}
