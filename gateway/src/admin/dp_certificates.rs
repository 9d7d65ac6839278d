//! `/clustering/dp-certificates` on a pki control plane: list, read, add and remove the data-plane
//! certificates trusted on top of `cluster_ca_cert`, and `generate` a pair already trusted. The
//! storage and trust live in [`crate::cluster::cp::dp_certificates`]; this is the HTTP shape.
//!
//! In shared mode every request is refused: a trusted certificate the link would not enforce is a
//! promise not kept. A DELETE of an id that does not exist is 404, not Kong's 204: an operator
//! revoking a data plane must learn that a mistyped id revoked nothing.

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::catalog::ApiError;
use crate::cluster::cp::dp_certificates::{ChangeError, DpCertificates, GENERATE_DEFAULT_DAYS, GENERATE_MAX_DAYS};

use super::body;

type Answer = Result<(StatusCode, Option<Value>), ApiError>;

pub(super) fn shared_mode() -> ApiError {
    ApiError::bad_request(
        "cluster_mtls = shared trusts data planes by the one shared certificate only: \
         /clustering/dp-certificates needs cluster_mtls = pki",
    )
}

/// Answers `/clustering/dp-certificates/<rest>`.
pub(super) async fn handle(
    certs: &DpCertificates,
    method: &Method,
    rest: &[&str],
    content_type: Option<&str>,
    bytes: &[u8],
) -> Answer {
    match (rest, method) {
        ([], &Method::GET | &Method::HEAD) => {
            let data: Vec<Value> = certs.list().await.iter().map(|e| e.render()).collect();
            Ok((StatusCode::OK, Some(json!({ "data": data, "next": null }))))
        }
        ([], &Method::POST) => {
            let fields = fields(content_type, bytes, &["cert"])?;
            let cert = match fields.get("cert") {
                None | Some(Value::Null) => return Err(schema("cert", "required field missing")),
                Some(Value::String(cert)) => cert,
                Some(_) => return Err(schema("cert", "expected a string")),
            };
            let entry = certs.add(cert).await.map_err(change_error)?;
            tracing::info!(id = %entry.id(), "a data plane certificate is now trusted (Admin API)");
            Ok((StatusCode::CREATED, Some(entry.render())))
        }
        (["generate"], &Method::POST) => {
            let fields = fields(content_type, bytes, &["name", "days"])?;
            let name = match fields.get("name") {
                None | Some(Value::Null) => crate::certs::ca::DP_DEFAULT_NAME.to_string(),
                Some(Value::String(name)) => {
                    let names = crate::certs::ca::split_names(std::slice::from_ref(name))
                        .map_err(|_| schema("name", "must be a DNS name or an IP address"))?;
                    match names.as_slice() {
                        [one] => one.clone(),
                        _ => return Err(schema("name", "must be one DNS name or IP address")),
                    }
                }
                Some(_) => return Err(schema("name", "expected a string")),
            };
            let days = match fields.get("days") {
                None | Some(Value::Null) => GENERATE_DEFAULT_DAYS,
                Some(value) => value
                    .as_u64()
                    .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                    .and_then(|d| u32::try_from(d).ok())
                    .filter(|d| (1..=GENERATE_MAX_DAYS).contains(d))
                    .ok_or_else(|| schema("days", &format!("must be an integer between 1 and {GENERATE_MAX_DAYS}")))?,
            };
            let generated = certs.generate(&name, days).await.map_err(change_error)?;
            tracing::info!(id = %generated.entry.id(), "a data plane certificate was generated and is now trusted (Admin API; its key was returned, not kept)");
            let mut shown = generated.entry.render();
            shown["key"] = json!(generated.key_pem);
            Ok((StatusCode::CREATED, Some(shown)))
        }
        (["generate"], _) | ([], _) => Err(ApiError::method_not_allowed()),
        ([id], &Method::GET | &Method::HEAD) => {
            let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found())?;
            let entry = certs.get(id).await.ok_or_else(ApiError::not_found)?;
            Ok((StatusCode::OK, Some(entry.render())))
        }
        ([id], &Method::DELETE) => {
            let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found())?;
            if !certs.remove(id).await.map_err(change_error)? {
                return Err(ApiError::not_found());
            }
            tracing::info!(%id, "a data plane certificate is no longer trusted (Admin API); new connections presenting it are refused");
            Ok((StatusCode::NO_CONTENT, None))
        }
        ([_], _) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found()),
    }
}

/// The body's fields (JSON, YAML or a form); an empty body has none. Fields other than `known`
/// are refused: a field accepted and ignored would mislead.
fn fields(content_type: Option<&str>, bytes: &[u8], known: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(fields) = body::decode("dp_certificates", content_type, bytes)? else {
        return Err(ApiError::bad_request("the request body must be an object"));
    };
    let unknown: Vec<(String, String)> = fields
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| (k.clone(), "unknown field".to_string()))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::schema(&unknown));
    }
    Ok(fields)
}

fn schema(field: &str, message: &str) -> ApiError {
    ApiError::schema(&[(field.to_string(), message.to_string())])
}

fn change_error(e: ChangeError) -> ApiError {
    match e {
        ChangeError::Invalid(e) => schema(e.field, &e.message),
        ChangeError::Duplicate { digest, .. } => ApiError::unique("cert_digest", &json!(digest)),
        ChangeError::Full => ApiError::bad_request(e.to_string()),
        ChangeError::Store(e) => {
            tracing::error!(error = %e, "cannot change the trusted data plane certificates");
            ApiError::internal(format!("the change was not made: {e}"))
        }
    }
}
