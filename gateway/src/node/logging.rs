//! The node's messages go through `tracing`, at the level `log_level` asks for, to the error logs
//! its settings name (`proxy_error_log`, `admin_error_log`, `status_error_log`; see
//! `logs::error`). What goes wrong before the settings are read is printed to stderr.

use std::sync::OnceLock;

use crate::conf::Settings;
use crate::logs::access::OpenError;
use crate::logs::{Destination, ErrorLogs};

/// The installed logs, for SIGUSR1.
static INSTALLED: OnceLock<ErrorLogs> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(transparent)]
    Prefix(#[from] crate::prefix::PrefixError),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Opens the error logs and installs the process's subscriber. Called once, by the binary. The
/// prefix is made first (0700), since the logs usually live in it.
pub fn init(settings: &Settings) -> Result<(), LoggingError> {
    if crate::prefix::ensure(&settings.prefix)? {
        eprintln!("gateway: created prefix {} (mode 0700)", settings.prefix.display());
    }
    let destinations = [
        &settings.proxy_error_log,
        &settings.admin_error_log,
        &settings.status_error_log,
        &settings.admin_gui_error_log,
    ];
    let logs = ErrorLogs::open(destinations)?;
    let to_terminal = |d: &Destination| match d {
        Destination::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        Destination::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
        Destination::File(_) => false,
    };
    let ansi = destinations.into_iter().all(to_terminal);
    let installed = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(settings.log_level.tracing_level())
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
    if installed.is_ok() {
        if let Destination::File(path) = logs.proxy_destination() {
            eprintln!("gateway: logging to {} (proxy_error_log)", path.display());
        }
        let _ = INSTALLED.set(logs);
    }
    Ok(())
}

/// SIGUSR1: the error log files are opened again (after logrotate moved them).
pub fn reopen() {
    if let Some(logs) = INSTALLED.get() {
        logs.reopen();
    }
}
