//! The flag grammar every subcommand shares: one duration parser, and the
//! reading of the bare numbers old spellings took. Plain functions with
//! typed errors: the clap value parser over them, and the deprecation
//! warnings, are the binary's (`src/cli/args.rs`).
//!
//! Why one parser: the flags used to speak several dialects (`traces synth
//! --duration 2` meant 2 ms, `bench --duration 2` meant 2 s, `emulate
//! --delay 20` took ms while `bench --delay` took `20ms`). Every duration
//! now goes through [`parse_duration`] and carries its unit; the table of
//! units is humantime's (`ns`, `us`, `ms`, `s`, `m`/`min`, `h`, ...).

use std::time::Duration;

/// Why a duration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// A number without a unit, where no bare number was ever accepted.
    #[error("{text:?} has no unit: write e.g. {text}ms or {text}s")]
    NoUnit {
        /// The text given.
        text: String,
    },
    /// Not a duration at all.
    #[error("{text:?} is not a duration ({reason}); write e.g. 20ms, 1.5s or 2m")]
    Invalid {
        /// The text given.
        text: String,
        /// humantime's complaint.
        reason: String,
    },
}

/// The unit a flag's bare numbers were read in before the flag grammar was
/// unified, for the one release that still accepts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareUnit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

impl BareUnit {
    fn suffix(self) -> &'static str {
        match self {
            Self::Ms => "ms",
            Self::S => "s",
        }
    }
}

/// Parses a duration with a unit: `20ms`, `1.5s`, `2m`, `1h 30m`.
/// Bare numbers are refused (see [`parse_legacy`] for flags that took them).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if t.parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(DurationError::NoUnit {
            text: t.to_string(),
        });
    }
    humantime::parse_duration(t).map_err(|e| DurationError::Invalid {
        text: t.to_string(),
        reason: e.to_string(),
    })
}

/// Parses a duration for a flag that used to take bare numbers in `bare`:
/// a bare number is still accepted, as that many `bare` units, and the
/// second value is then the spelling to use instead (e.g. `20ms`), for the
/// deprecation warning.
pub fn parse_legacy(
    text: &str,
    bare: BareUnit,
) -> Result<(Duration, Option<String>), DurationError> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => {
            let new = format!("{t}{}", bare.suffix());
            Ok((parse_duration(&new)?, Some(new)))
        }
        Ok(_) => Err(DurationError::Invalid {
            text: t.to_string(),
            reason: "not a non-negative number".into(),
        }),
        Err(_) => Ok((parse_duration(t)?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit table every duration flag shares.
    #[test]
    fn units() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("250ns", Duration::from_nanos(250)),
            ("40us", Duration::from_micros(40)),
            ("20ms", ms(20)),
            ("20msec", ms(20)),
            ("1.5s", ms(1500)),
            ("30s", ms(30_000)),
            ("30sec", ms(30_000)),
            ("2m", ms(120_000)),
            ("2min", ms(120_000)),
            ("1h", ms(3_600_000)),
            ("1h 30m", ms(5_400_000)),
            ("0s", Duration::ZERO),
            (" 100ms ", ms(100)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bare_numbers_and_garbage_are_refused_with_a_hint() {
        assert_eq!(
            parse_duration("20"),
            Err(DurationError::NoUnit { text: "20".into() })
        );
        assert!(parse_duration("20")
            .unwrap_err()
            .to_string()
            .contains("20ms"));
        for bad in ["", "ms", "20 parsecs", "-5s", "fast", "1e3"] {
            assert!(
                matches!(
                    parse_duration(bad),
                    Err(DurationError::Invalid { .. }) | Err(DurationError::NoUnit { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn legacy_flags_read_bare_numbers_in_their_old_unit_and_name_the_new_spelling() {
        assert_eq!(
            parse_legacy("20", BareUnit::Ms),
            Ok((Duration::from_millis(20), Some("20ms".into())))
        );
        assert_eq!(
            parse_legacy("2", BareUnit::S),
            Ok((Duration::from_secs(2), Some("2s".into())))
        );
        assert_eq!(
            parse_legacy("0.5", BareUnit::S),
            Ok((Duration::from_millis(500), Some("0.5s".into())))
        );
        assert_eq!(
            parse_legacy("20ms", BareUnit::S),
            Ok((Duration::from_millis(20), None))
        );
        assert!(parse_legacy("-1", BareUnit::Ms).is_err());
        assert!(parse_legacy("nan", BareUnit::Ms).is_err());
    }
}
