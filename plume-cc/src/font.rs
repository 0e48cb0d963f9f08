//! The plots' one font: DejaVu Sans, registered with plotters as
//! `sans-serif` on the first figure a process draws.
//!
//! Why here, at the bottom of the layers, and why lazily: every plotting
//! module (`plume`, `rl`, `eval`, `explain`, `bench`) needs it, and the
//! daemon must not pay for it. plotters renders text with ab_glyph from
//! the bytes registered here (its `ttf` feature, which linked fontconfig
//! and FreeType into every command's start-up, is off), so no font library
//! is loaded and no font file read until a figure is drawn. The font comes
//! from the system (Debian package fonts-dejavu-core, installed by `cargo
//! xtask setup`), never from the network.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// Why a figure could not be drawn: the one plot error of every plotting
/// module (each module's error enum wraps it).
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {message}")]
pub struct PlotError {
    /// The PNG being written.
    pub path: PathBuf,
    /// The backend's (or the font's) message.
    pub message: String,
}

impl PlotError {
    /// The error `message` while drawing `path`.
    pub fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// Where Debian and Ubuntu install DejaVu Sans.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why the plots' font could not be set up.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum FontError {
    /// The font file could not be read.
    #[error("font {FONT}: {0} (install the Debian package fonts-dejavu-core)")]
    Read(String),
    /// The file is not a font ab_glyph can use.
    #[error("font {FONT} is not a usable TrueType font")]
    Invalid,
}

/// Registers DejaVu Sans as plotters' `sans-serif`, once per process;
/// every figure with text calls this first.
pub fn ensure() -> Result<(), FontError> {
    static DONE: OnceLock<Result<(), FontError>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(FONT).map_err(|e| FontError::Read(e.to_string()))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| FontError::Invalid)
    })
    .clone()
}
