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
/// line, no backtrace) and ends the process: 0 on success, 1 on a runtime
/// error. Usage errors never get here: clap's exit with 2 happens at parsing.
pub fn finish(result: anyhow::Result<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "plume-cc: error: {}",
                plume_cc::errors::one_line(e.as_ref())
            );
            1
        }
    };
    quick_exit(code)
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
