//! Kong's per-worker limits, for one process that holds every worker: the open-file limit
//! (`nginx_main_worker_rlimit_nofile`) and the client connections each worker serves at once
//! (`nginx_events_worker_connections`). Kong's `auto` is `ulimit -n`, at least 1024 and at most
//! 16384.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept beside the workers' share: listeners, logs, the stores, the cluster links.
pub const HEADROOM: u64 = 1024;

/// Kong's `auto`: the soft limit, from 1024 to 16384.
pub fn auto(soft: u64) -> u64 {
    soft.clamp(1024, 16384)
}

/// What to do with the open-file limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The soft limit to set, when it must rise.
    pub raise_to: Option<u64>,
    /// Why the limit stays below what the settings ask for.
    pub short: Option<String>,
}

/// The soft limit the node needs, `per_worker` descriptors for each of `workers` plus
/// [`HEADROOM`], against the limits it has (`None`: unlimited). A limit already high enough is
/// left as it is (never lowered); one that cannot reach the need goes as high as the hard limit.
pub fn plan(soft: Option<u64>, hard: Option<u64>, per_worker: u64, workers: usize) -> Plan {
    let wanted = per_worker.saturating_mul(workers as u64).saturating_add(HEADROOM);
    let Some(soft) = soft else { return Plan { raise_to: None, short: None } };
    if soft >= wanted {
        return Plan { raise_to: None, short: None };
    }
    let target = hard.map_or(wanted, |hard| hard.min(wanted));
    let short = (target < wanted).then(|| {
        format!(
            "the open-file limit stays at {target}, below the {wanted} asked for ({per_worker} per worker × {workers} workers + {HEADROOM}): the hard limit is {}; raise it (ulimit -Hn, systemd's LimitNOFILE=)",
            hard.unwrap_or(target)
        )
    });
    Plan { raise_to: (target > soft).then_some(target), short }
}

/// Raises the process's open-file limit as the settings ask and returns the client connections
/// each worker may hold (`nginx_events_worker_connections`, `auto` from the limit found at start,
/// as Kong reads `ulimit -n` before nginx raises it).
pub fn apply(rlimit_nofile: Option<u64>, worker_connections: Option<usize>, workers: usize) -> usize {
    let Rlimit { current: soft, maximum: hard } = getrlimit(Resource::Nofile);
    let found = soft.unwrap_or(u64::MAX);
    let per_worker = rlimit_nofile.unwrap_or_else(|| auto(found));
    let plan = plan(soft, hard, per_worker, workers);
    if let Some(target) = plan.raise_to {
        match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: hard }) {
            Ok(()) => tracing::info!(
                from = found,
                to = target,
                "raised the open-file limit (nginx_main_worker_rlimit_nofile)"
            ),
            Err(error) => tracing::warn!(
                wanted = target,
                %error,
                "nginx_main_worker_rlimit_nofile: cannot raise the open-file limit; keeping {found}"
            ),
        }
    }
    match (plan.short, rlimit_nofile) {
        // Asked for by number: the operator is told it did not happen.
        (Some(short), Some(_)) => tracing::warn!("nginx_main_worker_rlimit_nofile: {short}"),
        // `auto` takes what the system allows.
        (Some(short), None) => tracing::debug!("nginx_main_worker_rlimit_nofile = auto: {short}"),
        (None, _) => {}
    }
    worker_connections.unwrap_or_else(|| usize::try_from(auto(found)).unwrap_or(16384))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_kongs_clamp() {
        assert_eq!(auto(256), 1024);
        assert_eq!(auto(4096), 4096);
        assert_eq!(auto(1 << 20), 16384);
    }

    #[test]
    fn the_limit_rises_to_the_need_never_falls_and_says_when_the_hard_limit_stops_it() {
        // 4 workers × 1024 + 1024 = 5120.
        assert_eq!(plan(Some(1024), Some(1 << 20), 1024, 4), Plan { raise_to: Some(5120), short: None });
        assert_eq!(plan(Some(65536), Some(1 << 20), 1024, 4), Plan { raise_to: None, short: None });
        assert_eq!(plan(None, None, 16384, 64), Plan { raise_to: None, short: None });
        assert_eq!(plan(Some(1024), None, 1024, 4), Plan { raise_to: Some(5120), short: None });
        let capped = plan(Some(1024), Some(4096), 1024, 4);
        assert_eq!(capped.raise_to, Some(4096));
        let short = capped.short.unwrap();
        assert!(
            short.contains("stays at 4096, below the 5120 asked for") && short.contains("hard limit is 4096"),
            "{short}"
        );
        // Already at the hard limit: nothing to set, and still said.
        let stuck = plan(Some(4096), Some(4096), 1024, 4);
        assert_eq!(stuck.raise_to, None);
        assert!(stuck.short.is_some());
    }
}
