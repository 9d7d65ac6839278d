//! End-to-end tests: each drives the real `gateway` binary the way a user would.

mod admin;
mod check;
mod cluster_stalls;
mod forward_proxy;
mod gen_cert;
mod hybrid;
mod lifecycle;
mod proxy;
mod router_faults;
mod streams;
mod tls;
