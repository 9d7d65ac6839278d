//! End-to-end tests: each drives the real `gateway` binary the way a user would.

mod admin;
mod admin_compat;
mod admin_hardening;
mod analytics;
mod bundled_plugins;
mod check;
mod cluster_stalls;
mod compile_cache;
mod credentials;
mod forward_proxy;
mod gen_cert;
mod hostile_clients;
mod hybrid;
mod lifecycle;
mod logs;
mod metrics;
mod ocsp;
mod pki;
mod pki_tools;
mod plugins;
mod proxy;
mod router_faults;
mod streams;
mod tls;
mod upstream_reuse;
mod wasm_plugins;
