//! Logs go to stderr through `tracing`, at the level `log_level` asks for.

use crate::conf::LogLevel;

/// Installs the process's subscriber. Called once, by the binary.
pub fn init(level: LogLevel) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level.tracing_level())
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}
