//! Logging (`--log-format`) and the end of the process, shared by the front
//! and the engine so both behave the same.

use super::command::LogFormat;

/// Whether stderr is the systemd journal: systemd sets JOURNAL_STREAM to
/// the `DEVICE:INODE` of the stream it connects to stdout/stderr
/// (systemd.exec(5)); an inherited variable with another stderr is ignored.
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    // SAFETY: fstat on fd 2 into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

/// Whether stderr carries JSON lines (`--log-format json`): then every line
/// of ours on stderr is one (see [`stderr_line`]).
static STDERR_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes a message of ours that bypasses `tracing` (a deprecation warning,
/// the final error) on stderr: as is, or, under `--log-format json`, as one
/// JSON object shaped like the log's own lines, so that a pipeline reading
/// JSON lines never meets a plain one.
pub fn stderr_line(level: &str, message: &str) {
    if STDERR_JSON.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "{}",
            json_line(level, message, std::time::SystemTime::now())
        );
    } else {
        eprintln!("{message}");
    }
}

/// One JSON log line with the fields of tracing-subscriber's JSON format.
fn json_line(level: &str, message: &str, at: std::time::SystemTime) -> String {
    serde_json::json!({
        "timestamp": humantime::format_rfc3339_micros(at).to_string(),
        "level": level,
        "fields": { "message": message },
        "target": "plume_cc",
    })
    .to_string()
}

/// Sets up `tracing` on stderr in `format` (see `--log-format`); `RUST_LOG`
/// filters (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::{layer::SubscriberExt as _, util::SubscriberInitExt as _, Layer as _};
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journal = stderr_is_journal();
    let format = match format {
        LogFormat::Auto if journal => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    STDERR_JSON.store(
        matches!(format, LogFormat::Json),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut fallback = None;
    let layer = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(l) => Some(l.boxed()),
            Err(e) => {
                fallback = Some(e);
                None
            }
        },
        LogFormat::Json => Some(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .boxed(),
        ),
        _ => None,
    };
    let layer = layer.unwrap_or_else(|| {
        let text = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, never in logs.
            .with_ansi(!journal && std::io::IsTerminal::is_terminal(&std::io::stderr()));
        // The journal stamps every line itself.
        if journal {
            text.without_time().boxed()
        } else {
            text.boxed()
        }
    });
    tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .init();
    if let Some(e) = fallback {
        tracing::warn!("no journald socket ({e}): logging text on stderr");
    }
}

/// Prints a command's error the one way (once, each cause once, on one
/// line, no backtrace) and ends the process with [`exit_code`]: 0 on
/// success, 2 on a usage error, 1 on a runtime error. (clap's own usage
/// errors exit with 2 at parsing and never get here.)
pub fn finish(result: anyhow::Result<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            stderr_line(
                "ERROR",
                &format!(
                    "plume-cc: error: {}",
                    plume_cc::errors::one_line(e.as_ref())
                ),
            );
            exit_code(&e)
        }
    };
    quick_exit(code)
}

/// 130 when a signal stopped a benchmark, 2 when `e` is a usage error, else 1. A usage error is a flag value (or
/// combination of flags) the command never accepts, whatever the host:
/// a [`super::args::UsageError`] from the command lines, or one of the
/// library's typed refusals of a setting, all found before anything runs.
/// A missing file, a kernel without a congestion control, or a missing
/// capability depends on the host, and stays a runtime error (1).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    use plume_cc::{
        bench::BenchError, daemon::metrics::MetricsError, daemon::ConfigError, eval::EvalError,
        explain::ExplainError, service::ServiceError,
    };
    // 128 + SIGINT, as a shell reports a command that Ctrl-C stopped.
    if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<BenchError>(),
            Some(BenchError::Cancelled { .. })
        ) || matches!(
            c.downcast_ref::<EvalError>(),
            Some(EvalError::Bench(BenchError::Cancelled { .. }))
        )
    }) {
        return 130;
    }
    let usage = e.chain().any(|c| {
        c.is::<super::args::UsageError>()
            || matches!(
                c.downcast_ref::<ConfigError>(),
                Some(
                    ConfigError::OutOfRange { .. }
                        | ConfigError::StaleTooShort { .. }
                        | ConfigError::RootCgroup { .. }
                )
            )
            || matches!(c.downcast_ref::<BenchError>(), Some(BenchError::Config(_)))
            || matches!(c.downcast_ref::<EvalError>(), Some(EvalError::Setting(_)))
            || matches!(
                c.downcast_ref::<ExplainError>(),
                Some(ExplainError::Range { .. })
            )
            || matches!(
                c.downcast_ref::<ServiceError>(),
                Some(ServiceError::BadSlice { .. })
            )
            || matches!(
                c.downcast_ref::<MetricsError>(),
                Some(MetricsError::NotLoopback { .. })
            )
    });
    if usage {
        2
    } else {
        1
    }
}

/// Ends the process without running the C++ static destructors that
/// `exit(3)` would: libtorch's (its operator registry, freed entry by
/// entry) take about 100 ms, a third of the engine's start and stop
/// (measured in docs/BENCHMARKS.md, "Start-up after the font and exit
/// changes"). The front has no such destructors but ends the same way, so
/// the two flush and exit alike. Everything of ours was dropped before;
/// only stdout and stderr are flushed here.
pub fn quick_exit(code: i32) -> ! {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit(2) ends the process at once; nothing after it runs.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_stderr_line_parses_with_the_logs_fields() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        let line = json_line("WARN", "plume-cc: warning: \"x\"\nnext", at);
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "plume-cc: warning: \"x\"\nnext");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123456Z");
    }

    /// A benchmark stopped by a signal ends with 130, as a shell reports a
    /// command that Ctrl-C stopped, whether it comes from `bench` or from
    /// `eval sim-to-real`'s kernel side (wrapped in `EvalError`, whose
    /// transparent variant hides it from the error chain); other bench
    /// errors stay 1.
    #[test]
    fn a_stopped_benchmark_exits_130() {
        use plume_cc::{bench::BenchError, eval::EvalError};
        let stopped = || BenchError::Cancelled { run: "r".into() };
        assert_eq!(exit_code(&anyhow::Error::new(stopped())), 130);
        assert_eq!(
            exit_code(&anyhow::Error::new(EvalError::Bench(stopped()))),
            130
        );
        let failed = BenchError::Iperf {
            run: "r".into(),
            msg: "m".into(),
        };
        assert_eq!(exit_code(&anyhow::Error::new(EvalError::Bench(failed))), 1);
    }
}
