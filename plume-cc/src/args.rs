//! The flag grammar every subcommand shares: one duration parser, and the
//! deprecation warnings that keep old spellings working for a release.
//!
//! Why one parser: the flags used to speak several dialects (`traces synth
//! --duration 2` meant 2 ms, `bench --duration 2` meant 2 s, `emulate
//! --delay 20` took ms while `bench --delay` took `20ms`). Every duration
//! now goes through [`parse_duration`] and carries its unit; the table of
//! units is humantime's (`ns`, `us`, `ms`, `s`, `m`/`min`, `h`, ...).

use std::time::Duration;

use clap::builder::TypedValueParser;

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

/// Prints a deprecation warning on stderr. Straight to stderr rather than
/// through `tracing`: flags are parsed before logging is set up, and the
/// warning is for the person at the command line.
pub fn deprecated(old: &str, new: &str) {
    eprintln!("plume-cc: warning: `{old}` is deprecated and will be refused in the next release; use `{new}`");
}

/// An error and its causes on one line, as the binary prints it: each
/// cause once. Why not anyhow's `{:#}`: many errors already show their
/// source in their own message (`"{path}: {source}"`), which `{:#}` then
/// repeats; a cause whose text is already in the line is left out.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = s.source();
    }
    text
}

/// clap value parser of a duration flag. `DurationArg::new()` refuses bare
/// numbers with a hint; `DurationArg::legacy(unit)` still reads them in
/// `unit` and warns with the new spelling (the flag's long name included);
/// `DurationArg::renamed(flag, unit)` is for an old flag (`--stale-ms`)
/// kept hidden beside its new name (`--stale`), which it names in the warning.
#[derive(Clone, Copy, Debug)]
pub struct DurationArg {
    bare: Option<BareUnit>,
    new_flag: Option<&'static str>,
}

impl DurationArg {
    /// For new flags: a unit is required.
    pub fn new() -> Self {
        Self {
            bare: None,
            new_flag: None,
        }
    }

    /// For flags that took bare numbers in `unit`.
    pub fn legacy(unit: BareUnit) -> Self {
        Self {
            bare: Some(unit),
            new_flag: None,
        }
    }

    /// For an old flag, replaced by `new_flag`, that took bare numbers in
    /// `unit`: any use of it is warned about.
    pub fn renamed(new_flag: &'static str, unit: BareUnit) -> Self {
        Self {
            bare: Some(unit),
            new_flag: Some(new_flag),
        }
    }
}

impl Default for DurationArg {
    fn default() -> Self {
        Self::new()
    }
}

impl TypedValueParser for DurationArg {
    type Value = Duration;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Duration, clap::Error> {
        let flag = arg
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .unwrap_or_else(|| "the duration".into());
        let invalid = |msg: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {flag}: {msg}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid(format!("{value:?} is not UTF-8")))?;
        match self.bare {
            None => parse_duration(text).map_err(|e| invalid(e.to_string())),
            Some(unit) => {
                let (d, new) = parse_legacy(text, unit).map_err(|e| invalid(e.to_string()))?;
                match (self.new_flag, new) {
                    (Some(to), new) => deprecated(
                        &format!("{flag} {text}"),
                        &format!("{to} {}", new.as_deref().unwrap_or(text)),
                    ),
                    (None, Some(new)) => {
                        deprecated(&format!("{flag} {text}"), &format!("{flag} {new}"))
                    }
                    (None, None) => {}
                }
                Ok(d)
            }
        }
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

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading {path}: {source}")]
        struct Read {
            path: &'static str,
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Read {
            path: "/x",
            source: io,
        })
        .context("loading the policy");
        assert_eq!(
            one_line(e.as_ref()),
            "loading the policy: reading /x: no such file"
        );
        // anyhow's own chain repeats the cause.
        assert_eq!(format!("{e:#}").matches("no such file").count(), 2);
    }

    #[test]
    fn the_clap_parser_names_the_flag() {
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("delay")
                .long("delay")
                .value_parser(DurationArg::new()),
        );
        let e = cmd
            .try_get_matches_from(["t", "--delay", "20"])
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--delay") && msg.contains("20ms"), "{msg}");
        assert_eq!(e.exit_code(), 2);
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("delay")
                .long("delay")
                .value_parser(DurationArg::legacy(BareUnit::Ms)),
        );
        let m = cmd.try_get_matches_from(["t", "--delay", "20"]).unwrap();
        assert_eq!(
            m.get_one::<Duration>("delay"),
            Some(&Duration::from_millis(20))
        );
    }
}
