//! Error logs (`proxy_error_log`, `admin_error_log`, `status_error_log`, `admin_gui_error_log`):
//! where the node's own messages (`tracing` events at `log_level`) go once its settings are read.
//! Events from the Admin API's code go to `admin_error_log`, the status API's to
//! `status_error_log`, the console's to `admin_gui_error_log`, and everything else (the proxy, the
//! cluster link, start and stop) to `proxy_error_log`, the file Kong's nginx names at its top
//! level. Settings naming one file share one handle; [`ErrorLogs::reopen`] (SIGUSR1)
//! opens each file again, for logrotate. A line is one `write`, so lines from several threads never
//! mix.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

use super::access::{Destination, OpenError, open_append};

/// The error logs, one per [`Part`], cheap to clone.
#[derive(Clone)]
pub struct ErrorLogs {
    targets: [Arc<Target>; Part::ALL.len()],
}

struct Target {
    key: &'static str,
    destination: Destination,
    /// Open while the destination is a file.
    file: Mutex<Option<File>>,
}

/// Which part of the node an event comes from, by the module that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Proxy,
    Admin,
    Status,
    Console,
}

impl Part {
    pub const ALL: [Part; 4] = [Part::Proxy, Part::Admin, Part::Status, Part::Console];

    pub fn of(target: &str) -> Part {
        let module = target.strip_prefix("gateway::").unwrap_or("");
        let first = module.split("::").next().unwrap_or("");
        match first {
            "admin" => Part::Admin,
            "status" => Part::Status,
            "console" => Part::Console,
            _ => Part::Proxy,
        }
    }

    /// The setting that names this part's log.
    pub fn key(self) -> &'static str {
        match self {
            Part::Proxy => "proxy_error_log",
            Part::Admin => "admin_error_log",
            Part::Status => "status_error_log",
            Part::Console => "admin_gui_error_log",
        }
    }
}

impl ErrorLogs {
    /// Opens the destination of each part, in [`Part::ALL`]'s order (each file once, however
    /// many settings name it).
    pub fn open(destinations: [&Destination; Part::ALL.len()]) -> Result<ErrorLogs, OpenError> {
        let mut opened: Vec<Arc<Target>> = Vec::with_capacity(destinations.len());
        for (part, destination) in Part::ALL.into_iter().zip(destinations) {
            let target = match opened.iter().find(|t| &t.destination == destination) {
                Some(same) => same.clone(),
                None => Target::open(part.key(), destination)?,
            };
            opened.push(target);
        }
        let targets = opened.try_into().unwrap_or_else(|_| unreachable!("one target per part"));
        Ok(ErrorLogs { targets })
    }

    /// Where the proxy's messages (and everything not another part's) go.
    pub fn proxy_destination(&self) -> &Destination {
        &self.target(Part::Proxy).destination
    }

    /// Opens every file again (after logrotate moved it). A file that cannot be opened keeps the
    /// old handle, and says so there.
    pub fn reopen(&self) {
        for (i, target) in self.targets.iter().enumerate() {
            if self.targets[..i].iter().any(|earlier| Arc::ptr_eq(earlier, target)) {
                continue;
            }
            let Destination::File(path) = &target.destination else { continue };
            let mut file = target.file.lock().unwrap_or_else(|p| p.into_inner());
            match open_append(path) {
                Ok(reopened) => *file = Some(reopened),
                Err(error) => {
                    if let Some(old) = file.as_mut() {
                        let _ = writeln!(old, "{}: cannot reopen {}: {error}", target.key, path.display());
                    }
                }
            }
        }
    }

    fn target(&self, part: Part) -> &Target {
        &self.targets[part as usize]
    }
}

impl Target {
    fn open(key: &'static str, destination: &Destination) -> Result<Arc<Target>, OpenError> {
        let file = match destination {
            Destination::File(path) => {
                Some(open_append(path).map_err(|source| OpenError { key, destination: destination.clone(), source })?)
            }
            Destination::Stdout | Destination::Stderr => None,
        };
        Ok(Arc::new(Target { key, destination: destination.clone(), file: Mutex::new(file) }))
    }
}

/// Writes one formatted event to its log.
pub struct EventWriter<'a>(&'a Target);

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0.destination {
            Destination::Stdout => std::io::stdout().lock().write_all(buf)?,
            Destination::Stderr => std::io::stderr().lock().write_all(buf)?,
            Destination::File(_) => {
                let mut file = self.0.file.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(file) = file.as_mut() {
                    file.write_all(buf)?;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ErrorLogs {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(self.target(Part::Proxy))
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter(self.target(Part::of(meta.target())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_go_to_the_log_of_the_part_that_sent_them() {
        assert_eq!(Part::of("gateway::admin::dp_certificates"), Part::Admin);
        assert_eq!(Part::of("gateway::admin"), Part::Admin);
        assert_eq!(Part::of("gateway::status"), Part::Status);
        assert_eq!(Part::of("gateway::console::assets"), Part::Console);
        assert_eq!(Part::of("gateway::proxy::send"), Part::Proxy);
        assert_eq!(Part::of("gateway::node"), Part::Proxy);
        assert_eq!(Part::of("gateway::administrator"), Part::Proxy, "a module only named like one");
        assert_eq!(Part::of("hyper::proto"), Part::Proxy);
    }

    #[test]
    fn one_file_named_twice_is_opened_once_and_reopened_after_a_move() {
        let dir = tempfile::tempdir().unwrap();
        let error = Destination::File(dir.path().join("logs/error.log"));
        let status = Destination::File(dir.path().join("logs/status_error.log"));
        let logs = ErrorLogs::open([&error, &error, &status, &error]).unwrap();
        let target = |part| &logs.targets[part as usize];
        assert!(Arc::ptr_eq(target(Part::Proxy), target(Part::Admin)));
        assert!(Arc::ptr_eq(target(Part::Proxy), target(Part::Console)));
        assert!(!Arc::ptr_eq(target(Part::Proxy), target(Part::Status)));
        EventWriter(logs.target(Part::Admin)).write_all(b"from the admin API\n").unwrap();
        EventWriter(logs.target(Part::Status)).write_all(b"from the status API\n").unwrap();
        let Destination::File(path) = &error else { unreachable!() };
        std::fs::rename(path, path.with_extension("log.1")).unwrap();
        logs.reopen();
        EventWriter(logs.target(Part::Proxy)).write_all(b"after the move\n").unwrap();
        assert_eq!(std::fs::read_to_string(path.with_extension("log.1")).unwrap(), "from the admin API\n");
        assert_eq!(std::fs::read_to_string(path).unwrap(), "after the move\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("logs/status_error.log")).unwrap(), "from the status API\n");
    }
}
