//! `gateway cluster check -c FILE`: the data plane's path to its control plane, run step by step
//! without starting a node, one line per hop with `ok` or the failure and a hint.

use std::sync::{Arc, Mutex};

use super::dial::Hop;
use super::dp::outlet;
use crate::conf::{Role, Settings};

/// Runs the path and prints it; true when every hop worked.
pub async fn run(settings: &Settings, out: &mut dyn std::io::Write) -> bool {
    let say = |out: &mut dyn std::io::Write, line: String| {
        let _ = writeln!(out, "{line}");
    };
    if settings.role != Role::DataPlane {
        say(
            out,
            format!(
                "FAIL  role is {}: cluster check runs a data plane's path (role = data_plane)",
                settings.role.as_str()
            ),
        );
        return false;
    }
    let via = match (&settings.proxy_server, settings.cluster_use_proxy) {
        (Some(proxy), true) => format!(" through the proxy {proxy}"),
        _ => String::new(),
    };
    say(out, format!("checking the path to the control plane {}{via}", settings.cluster_control_plane));
    let dialer = match super::dial::Dialer::from_settings(settings) {
        Ok(dialer) => dialer,
        Err(e) => {
            say(out, format!("FAIL  setup: {e}"));
            return false;
        }
    };
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let mut report = move |hop: Hop, detail: String| {
        sink.lock().unwrap_or_else(|p| p.into_inner()).push(format!("ok    {:<22}{detail}", hop.label()));
    };
    let dialed = dialer.dial(&mut report).await;
    for line in lines.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        say(out, line);
    }
    let tls = match dialed {
        Ok(tls) => tls,
        Err(e) => {
            say(out, format!("FAIL  {:<22}{}", e.hop.label(), e.message));
            say(out, format!("      hint: {}", e.hint));
            return false;
        }
    };
    let node_id = uuid::Uuid::new_v4();
    match outlet(
        tls,
        &dialer.control_plane,
        node_id,
        "gateway-cluster-check",
        usize::try_from(settings.cluster_max_payload).unwrap_or(usize::MAX),
    )
    .await
    {
        Ok((mut ws, _)) => {
            let _ = ws.close(None).await;
            say(out, format!("ok    {:<22}the control plane accepted a data plane link", Hop::Outlet.label()));
            say(out, "the whole path works".into());
            true
        }
        Err(e) => {
            say(out, format!("FAIL  {:<22}{}", e.hop.label(), e.message));
            say(out, format!("      hint: {}", e.hint));
            false
        }
    }
}
