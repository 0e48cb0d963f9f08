//! The binary's side of the flag grammar: the clap value parser of every
//! duration flag (over the library's [`plume_cc::args::parse_duration`]),
//! and the deprecation warnings that keep old spellings working for a
//! release.

use std::{sync::Mutex, time::Duration};

use clap::builder::TypedValueParser;

use plume_cc::args::{parse_duration, parse_legacy, BareUnit};

/// A value its flag never accepts, found after clap parsed the command
/// line (a range, or a combination of flags): a usage error, so the process
/// exits with 2 as clap's own refusals do, not with the 1 of a runtime
/// error (`logging::exit_code`). Its message names the flag and the
/// accepted form.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Returns early with a [`UsageError`] built like `format!`.
macro_rules! usage_bail {
    ($($arg:tt)*) => {
        return Err($crate::cli::args::UsageError(format!($($arg)*)).into())
    };
}
pub(crate) use usage_bail;

/// clap value parser of a rate or size that must be a positive, finite
/// number (`--mbps`): 0, a negative number, NaN or infinity is refused at
/// parsing (exit 2), naming the flag, with `example` as the accepted form.
pub fn positive_f64(example: &'static str) -> impl TypedValueParser<Value = f64> {
    clap::builder::StringValueParser::new().try_map(move |s: String| {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => Err(format!("must be a positive number, e.g. {example}")),
        }
    })
}

/// An integer type a flag takes: its bounds, for [`WholeArg`]'s message.
pub trait WholeNumber:
    std::str::FromStr<Err = std::num::ParseIntError>
    + Copy
    + PartialOrd
    + std::fmt::Display
    + Send
    + Sync
    + 'static
{
    /// The type's smallest value.
    const MIN: Self;
    /// The type's largest value.
    const MAX: Self;
    /// Whether the type has no negative values.
    const UNSIGNED: bool;
}

macro_rules! whole_number {
    ($($t:ty),*) => {
        $(impl WholeNumber for $t {
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            const UNSIGNED: bool = <$t>::MIN == 0;
        })*
    };
}
whole_number!(u8, u16, u32, u64, usize, i32, i64);

/// clap value parser of a whole-number flag (a count, a seed, a port):
/// clap's own integer parser refuses `abc` with only "invalid digit found
/// in string" and `-1` as an unknown flag; this one says the accepted form
/// ("expected a whole number, 0 or more", or the flag's range). Give the
/// flag `allow_negative_numbers = true` too, so that `-1` reaches it.
#[derive(Clone, Copy, Debug)]
pub struct WholeArg<T> {
    min: T,
    max: T,
}

/// A whole number of type `T`, any value of the type.
pub fn whole<T: WholeNumber>() -> WholeArg<T> {
    WholeArg {
        min: T::MIN,
        max: T::MAX,
    }
}

impl<T: WholeNumber> WholeArg<T> {
    /// Only the values in `range`.
    pub fn range(self, range: std::ops::RangeInclusive<T>) -> Self {
        Self {
            min: *range.start(),
            max: *range.end(),
        }
    }

    /// The accepted form, for the message. The bounds are named when the
    /// flag narrows the type's range, or when the value overflowed it.
    fn form(&self, overflow: bool) -> String {
        if self.min == T::MIN && self.max == T::MAX && !overflow {
            if T::UNSIGNED {
                "expected a whole number, 0 or more".into()
            } else {
                "expected a whole number".into()
            }
        } else {
            format!("expected a whole number from {} to {}", self.min, self.max)
        }
    }
}

impl<T: WholeNumber> TypedValueParser for WholeArg<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        use std::num::IntErrorKind;
        let this = *self;
        // Through `try_map`, so that the message is clap's own
        // ("invalid value 'abc' for '--steps <STEPS>': ...") with ours after it.
        clap::builder::StringValueParser::new()
            .try_map(move |s: String| match s.parse::<T>() {
                Ok(v) if v >= this.min && v <= this.max => Ok(v),
                Ok(_) => Err(this.form(false)),
                Err(e) => Err(this.form(matches!(
                    e.kind(),
                    IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
                ))),
            })
            .parse_ref(cmd, arg, value)
    }
}

/// A floating-point type a flag takes.
pub trait RealNumber: std::str::FromStr + Copy + Send + Sync + 'static {
    /// Neither NaN nor infinite.
    fn finite(self) -> bool;
}

impl RealNumber for f32 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl RealNumber for f64 {
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// clap value parser of a real-number flag (a gain, an exponent, a
/// tolerance): any finite number, negative ones included (give the flag
/// `allow_negative_numbers = true`); `abc`, `NaN` and `inf` are refused
/// with the accepted form, where clap's own parser said only "invalid float
/// literal" and took NaN.
pub fn number<T: RealNumber>() -> impl TypedValueParser<Value = T> {
    clap::builder::StringValueParser::new().try_map(|s: String| match s.parse::<T>() {
        Ok(v) if v.finite() => Ok(v),
        _ => Err("expected a number, e.g. 2, 0.5 or -1.5"),
    })
}

/// Prints a deprecation warning on stderr. Straight to stderr rather than
/// through `tracing` (whose filter could hide it): the warning is for the
/// person at the command line; under `--log-format json` it is a JSON line
/// like the log's (`logging::stderr_line`).
pub fn deprecated(old: &str, new: &str) {
    super::logging::stderr_line("WARN", &deprecation(old, new));
}

fn deprecation(old: &str, new: &str) -> String {
    format!("plume-cc: warning: `{old}` is deprecated and will be refused in the next release; use `{new}`")
}

/// The deprecation warnings of the flags parsed so far. Parsing keeps them
/// rather than printing them because a command line may be parsed twice:
/// by the front, then again by the engine it hands the command to; only the
/// process that runs the command prints them ([`print_parse_warnings`]).
static PARSE_WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn deprecated_at_parse(old: &str, new: &str) {
    PARSE_WARNINGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(deprecation(old, new));
}

/// Takes the deprecation warnings parsing gathered (the front drops them
/// when it hands the command line to the engine, which warns itself).
pub fn take_parse_warnings() -> Vec<String> {
    std::mem::take(
        &mut *PARSE_WARNINGS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

/// Prints the deprecation warnings parsing gathered, on stderr.
pub fn print_parse_warnings() {
    for w in take_parse_warnings() {
        super::logging::stderr_line("WARN", &w);
    }
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
                    (Some(to), new) => deprecated_at_parse(
                        &format!("{flag} {text}"),
                        &format!("{to} {}", new.as_deref().unwrap_or(text)),
                    ),
                    (None, Some(new)) => {
                        deprecated_at_parse(&format!("{flag} {text}"), &format!("{flag} {new}"))
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

    /// clap's message for `value` of a flag `--n` with `parser`, or the value.
    fn parse<T: Clone + Send + Sync + 'static>(
        parser: impl TypedValueParser<Value = T>,
        value: &str,
    ) -> Result<T, String> {
        let cmd = clap::Command::new("t").arg(
            clap::Arg::new("n")
                .long("n")
                .allow_negative_numbers(true)
                .value_parser(parser),
        );
        match cmd.try_get_matches_from(["t", "--n", value]) {
            Ok(m) => Ok(m.get_one::<T>("n").unwrap().clone()),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{e}");
                Err(e.to_string())
            }
        }
    }

    #[test]
    fn whole_numbers_say_the_accepted_form() {
        assert_eq!(parse(whole::<u64>(), "1000"), Ok(1000));
        for bad in ["abc", "-1", "1.5", "1e3", ""] {
            let e = parse(whole::<u64>(), bad).unwrap_err();
            assert!(
                e.contains(&format!(
                    "invalid value '{bad}' for '--n <n>': expected a whole number, 0 or more"
                )),
                "{bad}: {e}"
            );
        }
        // Past the type's range: its bounds.
        let e = parse(whole::<u16>(), "70000").unwrap_err();
        assert!(e.contains("expected a whole number from 0 to 65535"), "{e}");
        // A narrowed range: its bounds, for a word and for a value outside.
        for bad in ["0", "51", "x"] {
            let e = parse(whole::<u32>().range(1..=50), bad).unwrap_err();
            assert!(
                e.contains("expected a whole number from 1 to 50"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse(whole::<u32>().range(1..=50), "50"), Ok(50));
        // Signed: negatives are numbers.
        assert_eq!(parse(whole::<i32>(), "-3"), Ok(-3));
        let e = parse(whole::<i32>(), "two").unwrap_err();
        assert!(e.contains("expected a whole number"), "{e}");
        assert!(!e.contains("0 or more"), "{e}");
    }

    #[test]
    fn real_numbers_are_finite_and_may_be_negative() {
        assert_eq!(parse(number::<f32>(), "-0.5"), Ok(-0.5));
        assert_eq!(parse(number::<f64>(), "2"), Ok(2.0));
        for bad in ["abc", "NaN", "inf", "1,5"] {
            let e = parse(number::<f64>(), bad).unwrap_err();
            assert!(
                e.contains("expected a number, e.g. 2, 0.5 or -1.5"),
                "{bad}: {e}"
            );
        }
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
