//! The `log` phase: after the response ended (its last byte handed to the connection, or the
//! client gone), on a task of its own, so nothing a log plugin does delays the response or the
//! next request on the connection.

use std::sync::Arc;

use super::context::RequestContext;
use super::phases::PhaseRunner;

/// Runs `log` for the finished request `ctx`, off the response's path.
pub fn spawn(phases: Arc<dyn PhaseRunner>, mut ctx: RequestContext) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move { phases.log(&mut ctx) });
        }
        // A body dropped outside the runtime (at shutdown): log now rather than never.
        Err(_) => phases.log(&mut ctx),
    }
}
