//! Both ends of the CP ↔ DP link. For now: the TLS identities and verifiers the link will use.

pub mod tls;
