//! The responses the gateway makes itself, with Kong's texts in Kong's templates (JSON, HTML,
//! XML or plain text, chosen from the request's `Accept` as Kong chooses), the gateway's own
//! headers on every response (`headers`: `Via`, `Server`, the latencies, `X-Kong-Request-Id`),
//! and the typed failures the answers stand for, with who is to blame. (Whether a retry is safe is
//! decided where the retry is: `send::retry_is_safe`.)

use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::context::RequestContext;
use super::phases::PhaseError;
use super::upstream::ProxyBody;
use crate::conf::{ErrorTemplates, ErrorType, ResponseHeaders};

/// Who caused a request to fail: decides the status and what the log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The client sent something unacceptable, too much, or too slowly (4xx).
    Client,
    /// The upstream could not be reached, was too slow, or answered badly (502/503/504).
    Upstream,
    /// The gateway itself (a component failure): 500.
    Gateway,
    /// A plugin failed in one of its phases: 500, only for its request.
    Plugin,
}

/// A request that cannot be served, and why.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    /// Kong's text for the client.
    pub message: &'static str,
    /// What happened, for the log (never sent to the client).
    pub detail: String,
    pub blame: Blame,
    /// Already reported where it began (a plugin on back-off): logged at debug only.
    pub quiet: bool,
}

impl Failure {
    pub fn new(status: StatusCode, blame: Blame, detail: impl Into<String>) -> Failure {
        Failure { status, message: message_for(status), detail: detail.into(), blame, quiet: false }
    }

    /// A plugin's phase failed: 500 with Kong's body.
    pub fn plugin(error: PhaseError) -> Failure {
        let quiet = error.fault == super::phases::Fault::Unavailable;
        Failure { quiet, ..Failure::new(StatusCode::INTERNAL_SERVER_ERROR, Blame::Plugin, error.to_string()) }
    }

    /// Logs the failure as its blame deserves and makes its answer (as nginx's error pages:
    /// formatted by `Accept`, else `Content-Type`, else `error_default_type`).
    pub fn answer(
        &self,
        ctx: &RequestContext,
        client_version: hyper::Version,
        presentation: &Presentation,
    ) -> Response<ProxyBody> {
        let status = self.status.as_u16();
        match self.blame {
            Blame::Client => {
                tracing::debug!(peer = %ctx.conn.peer, status, error = %self.detail, "request refused")
            }
            Blame::Upstream => tracing::warn!(status, error = %self.detail, "upstream request failed"),
            Blame::Gateway => tracing::error!(error = %self.detail, "request failed in the gateway"),
            Blame::Plugin => {
                let route = ctx.route().map(|r| r.name.clone().unwrap_or_else(|| r.id.to_string()));
                let route = route.as_deref().unwrap_or("none");
                if self.quiet {
                    tracing::debug!(route, error = %self.detail, "a plugin failed the request")
                } else {
                    tracing::error!(route, error = %self.detail, "a plugin failed the request")
                }
            }
        }
        let mut response = presentation.answer(ctx, self.status, self.message, Negotiation::ErrorPage);
        if self.blame == Blame::Client && client_version < hyper::Version::HTTP_2 {
            // What else the client sent cannot be trusted to frame a next request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Kong's default texts for the statuses the gateway answers itself.
pub fn message_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        404 => "Not found",
        408 => "Request timeout",
        413 => "Payload too large",
        414 => "URI too long",
        431 => "Request header or cookie too large",
        500 => "An unexpected error occurred",
        502 => "An invalid response was received from the upstream server",
        503 => "The upstream server is currently unavailable",
        504 => "The upstream server is timing out",
        _ => "The request could not be served",
    }
}

/// The product token of `Server` and `Via`.
pub const SERVER: &str = concat!("gateway/", env!("CARGO_PKG_VERSION"));
/// `Via` as a proxy that speaks HTTP/1.1 upstream writes it.
pub const VIA: &str = concat!("1.1 gateway/", env!("CARGO_PKG_VERSION"));

pub const X_KONG_REQUEST_ID: HeaderName = HeaderName::from_static("x-kong-request-id");
const X_KONG_UPSTREAM_LATENCY: HeaderName = HeaderName::from_static("x-kong-upstream-latency");
const X_KONG_PROXY_LATENCY: HeaderName = HeaderName::from_static("x-kong-proxy-latency");
const X_KONG_RESPONSE_LATENCY: HeaderName = HeaderName::from_static("x-kong-response-latency");
const X_KONG_UPSTREAM_STATUS: HeaderName = HeaderName::from_static("x-kong-upstream-status");

/// How the format of an answer is chosen: Kong has two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// `kong.response.error` (no route matched, https required): `Accept`, else JSON.
    Accept,
    /// nginx's error pages (client errors, upstream failures, failed plugins): `Accept`, else
    /// `Content-Type`, else `error_default_type`.
    ErrorPage,
}

/// What the request said about the answers it wants, kept from its head (cheap clones, read only
/// when the gateway answers itself).
#[derive(Debug, Clone, Default)]
pub struct Wishes {
    pub accept: Option<HeaderValue>,
    pub content_type: Option<HeaderValue>,
}

impl Wishes {
    pub fn of(headers: &HeaderMap) -> Wishes {
        Wishes { accept: joined(headers, header::ACCEPT), content_type: headers.get(header::CONTENT_TYPE).cloned() }
    }
}

/// Every value of `name` joined with `,` (Kong joins repeated `Accept` headers so).
fn joined(headers: &HeaderMap, name: HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(&name).iter();
    let first = values.next()?;
    let rest: Vec<&HeaderValue> = values.collect();
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut all = first.as_bytes().to_vec();
    for value in rest {
        all.push(b',');
        all.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&all).ok()
}

/// The node's settings for what the gateway says itself: its headers and its error answers.
#[derive(Debug, Clone, Default)]
pub struct Presentation {
    /// Answer `Kong-Debug: 1` with the route and service (`allow_debug_header`).
    pub allow_debug_header: bool,
    pub headers: ResponseHeaders,
    /// Upstream requests carry `X-Kong-Request-Id` (`headers_upstream`).
    pub upstream_request_id: bool,
    pub errors: ErrorTemplates,
}

impl Presentation {
    /// The gateway's own answer with `status` and Kong's `message`, formatted as the request
    /// wishes.
    pub fn answer(
        &self,
        ctx: &RequestContext,
        status: StatusCode,
        message: &str,
        negotiation: Negotiation,
    ) -> Response<ProxyBody> {
        let kind = self.format(&ctx.wishes, negotiation);
        let (content_type, body) = render(&self.errors, kind, message, &ctx.request_id);
        let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
        *response.status_mut() = status;
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    fn format(&self, wishes: &Wishes, negotiation: Negotiation) -> ErrorType {
        if let Some(accept) = &wishes.accept {
            return from_accept(accept.as_bytes()).unwrap_or(ErrorType::Json);
        }
        match negotiation {
            Negotiation::Accept => ErrorType::Json,
            Negotiation::ErrorPage => match &wishes.content_type {
                Some(content_type) => {
                    let media = content_type.as_bytes().split(|&b| b == b';').next().unwrap_or_default();
                    of_media(media.trim_ascii())
                }
                None => self.errors.default_type,
            },
        }
    }

    /// Adds the gateway's own headers (`headers`) to a response that is about to go out: the
    /// proxied ones when the request reached its upstream, else those of the gateway's answers.
    pub fn stamp(&self, headers: &mut HeaderMap, ctx: &RequestContext, upstream_status: Option<StatusCode>) {
        let h = &self.headers;
        let t = &ctx.timings;
        let ms = |d: std::time::Duration| HeaderValue::from(d.as_millis() as u64);
        match t.upstream_start {
            Some(sent) => {
                if h.via {
                    headers.append(header::VIA, HeaderValue::from_static(VIA));
                }
                if h.server && !headers.contains_key(header::SERVER) {
                    headers.insert(header::SERVER, HeaderValue::from_static(SERVER));
                }
                if h.proxy_latency {
                    headers.insert(X_KONG_PROXY_LATENCY, ms(sent - t.start));
                }
                if h.upstream_latency {
                    headers.insert(X_KONG_UPSTREAM_LATENCY, ms(t.first_byte.unwrap_or_else(Instant::now) - sent));
                }
                if let (true, Some(status)) = (h.upstream_status, upstream_status) {
                    headers.insert(X_KONG_UPSTREAM_STATUS, HeaderValue::from(status.as_u16()));
                }
            }
            None => {
                if h.server {
                    headers.insert(header::SERVER, HeaderValue::from_static(SERVER));
                } else {
                    headers.remove(header::SERVER);
                }
                if h.response_latency {
                    headers.insert(X_KONG_RESPONSE_LATENCY, ms(t.start.elapsed()));
                }
            }
        }
        if h.request_id {
            headers.insert(X_KONG_REQUEST_ID, request_id_value(&ctx.request_id));
        }
    }
}

/// An error answer's `Content-Type` and body: `message` in the node's template for `kind` (Kong's
/// when it has none), with the request id.
pub fn render(
    templates: &ErrorTemplates,
    kind: ErrorType,
    message: &str,
    request_id: &crate::logs::RequestId,
) -> (&'static str, String) {
    let body = fill(templates.custom(kind).unwrap_or(default_template(kind)), kind, message, request_id);
    let content_type = match kind {
        ErrorType::Json => "application/json; charset=utf-8",
        ErrorType::Html => "text/html; charset=utf-8",
        ErrorType::Xml => "application/xml; charset=utf-8",
        ErrorType::Plain => "text/plain; charset=utf-8",
    };
    (content_type, body)
}

/// Kong's `kong.response.error` format for a request whose `Accept` is `accept`: the best item
/// of it, JSON when none counts or there is none.
pub fn error_format(accept: Option<&[u8]>) -> ErrorType {
    accept.and_then(from_accept).unwrap_or(ErrorType::Json)
}

/// Kong's text for an error status a plugin answers without a message of its own
/// (`kong.response.error(status)`).
pub fn status_message(status: u16) -> std::borrow::Cow<'static, str> {
    let known = match status {
        400 => "Bad request",
        401 => "Unauthorized",
        402 => "Payment required",
        403 => "Forbidden",
        404 => "Not found",
        405 => "Method not allowed",
        406 => "Not acceptable",
        407 => "Proxy authentication required",
        408 => "Request timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length required",
        412 => "Precondition failed",
        413 => "Payload too large",
        414 => "URI too long",
        415 => "Unsupported media type",
        416 => "Range not satisfiable",
        417 => "Expectation failed",
        418 => "I'm a teapot",
        421 => "Misdirected request",
        422 => "Unprocessable entity",
        423 => "Locked",
        424 => "Failed dependency",
        425 => "Too early",
        426 => "Upgrade required",
        428 => "Precondition required",
        429 => "Too many requests",
        431 => "Request header fields too large",
        451 => "Unavailable for legal reasons",
        494 => "Request header or cookie too large",
        500 => "An unexpected error occurred",
        501 => "Not implemented",
        502 => "An invalid response was received from the upstream server",
        503 => "The upstream server is currently unavailable",
        504 => "The upstream server is timing out",
        505 => "HTTP version not supported",
        506 => "Variant also negotiates",
        507 => "Insufficient storage",
        508 => "Loop detected",
        510 => "Not extended",
        511 => "Network authentication required",
        _ => return format!("The upstream server responded with {status}").into(),
    };
    known.into()
}

/// The request id as a header value (32 hex digits).
pub fn request_id_value(id: &crate::logs::RequestId) -> HeaderValue {
    HeaderValue::from_str(&id.to_string()).expect("hex digits are a header value")
}

/// The most items of an `Accept` read (a longer list is a client's attack, not a preference).
const MAX_ACCEPT_ITEMS: usize = 64;

/// Kong's reading of `Accept`: each item `type/subtype` (either may be `*`) with an optional `q`
/// (0 to 1, at most three decimals; missing: 1); the item with the highest `q` wins, the first on
/// a tie, and an item with `q = 0` never. `None` when no item counts.
pub fn from_accept(accept: &[u8]) -> Option<ErrorType> {
    let mut best: Option<(u16, ErrorType)> = None;
    for item in accept.split(|&b| b == b',').take(MAX_ACCEPT_ITEMS) {
        let mut parts = item.split(|&b| b == b';');
        let media = parts.next().unwrap_or_default().trim_ascii();
        if !is_media_range(media) {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            let param = param.trim_ascii();
            if let Some(value) = param.strip_prefix(b"q=").or_else(|| param.strip_prefix(b"Q=")) {
                q = parse_q(value);
            }
        }
        let Some(q) = q.filter(|&q| q > 0) else { continue };
        if best.is_none_or(|(top, _)| q > top) {
            best = Some((q, of_media(media)));
        }
    }
    best.map(|(_, kind)| kind)
}

/// `type/subtype`, each `*` or a token of two characters or more.
fn is_media_range(media: &[u8]) -> bool {
    let part = |p: &[u8]| {
        p == b"*" || (p.len() >= 2 && p.iter().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(b)))
    };
    match media.iter().position(|&b| b == b'/') {
        Some(slash) => part(&media[..slash]) && part(&media[slash + 1..]),
        None => false,
    }
}

/// A `q` value in thousandths: `0`, `1`, `0.5`, `1.000`...; `None` when it is not one.
fn parse_q(value: &[u8]) -> Option<u16> {
    let (whole, fraction) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + u16::from(fraction.get(i).map_or(0, |d| d - b'0'));
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Kong's mapping of a media type to an answer format: the four it has templates for, `text/*`
/// plain, anything else JSON.
fn of_media(media: &[u8]) -> ErrorType {
    let is = |known: &str| media.eq_ignore_ascii_case(known.as_bytes());
    if is("text/html") {
        ErrorType::Html
    } else if is("text/plain") || is("text/*") {
        ErrorType::Plain
    } else if is("application/xml") {
        ErrorType::Xml
    } else {
        ErrorType::Json
    }
}

/// Kong's templates: `%s` is the message, then the request id.
fn default_template(kind: ErrorType) -> &'static str {
    match kind {
        ErrorType::Json => "{\n  \"message\":\"%s\",\n  \"request_id\":\"%s\"\n}",
        ErrorType::Html => {
            "<!doctype html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>%s.</p>\n    <p>request_id: %s</p>\n  </body>\n</html>\n"
        }
        ErrorType::Xml => {
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error>\n  <message>%s</message>\n  <requestid>%s</requestid>\n</error>\n"
        }
        ErrorType::Plain => "%s\nrequest_id: %s\n",
    }
}

/// `template` with its first `%s` the message and its second the request id, each escaped for
/// the format, and `%%` a `%` (templates are checked when read: no other `%` directive).
fn fill(template: &str, kind: ErrorType, message: &str, id: &crate::logs::RequestId) -> String {
    let id = id.to_string();
    let values = [escape(kind, message), id];
    let mut out = String::with_capacity(template.len() + 64);
    let mut next = 0;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => {
                if let Some(value) = values.get(next) {
                    out.push_str(value);
                }
                next += 1;
            }
            Some(other) => {
                out.push('%');
                if other != '%' {
                    out.push(other);
                }
            }
            None => out.push('%'),
        }
    }
    out
}

/// A message as the format needs it written (Kong's own texts need none of this; a template's
/// message never breaks its document).
fn escape(kind: ErrorType, message: &str) -> String {
    match kind {
        ErrorType::Json => {
            let quoted = serde_json::to_string(message).expect("a string serialises");
            quoted[1..quoted.len() - 1].to_string()
        }
        ErrorType::Html | ErrorType::Xml => {
            let mut out = String::with_capacity(message.len());
            for c in message.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
            out
        }
        ErrorType::Plain => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_error_answers_take_kongs_texts_and_formats() {
        assert_eq!(status_message(401), "Unauthorized");
        assert_eq!(status_message(429), "Too many requests");
        assert_eq!(status_message(499), "The upstream server responded with 499");
        assert_eq!(error_format(None), ErrorType::Json);
        assert_eq!(error_format(Some(b"text/css")), ErrorType::Json);
        assert_eq!(error_format(Some(b"application/xml;q=0.5, text/html")), ErrorType::Html);
        let id = crate::logs::RequestId(0xab);
        let (content_type, body) = render(&ErrorTemplates::default(), ErrorType::Json, "say \"no\"", &id);
        assert_eq!(content_type, "application/json; charset=utf-8");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["message"], "say \"no\"");
        assert_eq!(body["request_id"], id.to_string());
    }

    #[test]
    fn accept_is_read_as_kong_reads_it() {
        let of = |a: &str| from_accept(a.as_bytes());
        assert_eq!(of("text/html"), Some(ErrorType::Html));
        assert_eq!(of("application/xml;q=0.9, text/plain"), Some(ErrorType::Plain));
        assert_eq!(
            of("text/plain;q=0.3, application/xml;q=0.8, text/html;q=0.8"),
            Some(ErrorType::Xml),
            "the first on a tie"
        );
        assert_eq!(of("text/*"), Some(ErrorType::Plain));
        assert_eq!(of("*/*"), Some(ErrorType::Json));
        assert_eq!(of("application/*"), Some(ErrorType::Json));
        assert_eq!(of("text/css, text/html"), Some(ErrorType::Json), "an unknown type still wins, as JSON");
        assert_eq!(of("TEXT/HTML"), Some(ErrorType::Html));
        assert_eq!(of("text/html;q=0"), None);
        assert_eq!(of("text/html;q=2, text/plain;q=0.001"), Some(ErrorType::Plain), "q=2 is no q: ignored");
        assert_eq!(of("garbage, x, /"), None);
        assert_eq!(of(""), None);
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"1.001"), None);
        assert_eq!(parse_q(b"0.1234"), None);
    }

    #[test]
    fn templates_are_filled_with_the_message_and_the_id() {
        let id = crate::logs::RequestId(0xabc);
        let plain = fill(default_template(ErrorType::Plain), ErrorType::Plain, "Not found", &id);
        assert_eq!(plain, "Not found\nrequest_id: 00000000000000000000000000000abc\n");
        let json: serde_json::Value = serde_json::from_str(&fill(
            default_template(ErrorType::Json),
            ErrorType::Json,
            "a \"quoted\" \\ text",
            &id,
        ))
        .unwrap();
        assert_eq!(json["message"], "a \"quoted\" \\ text");
        assert_eq!(json["request_id"], "00000000000000000000000000000abc");
        let html = fill(default_template(ErrorType::Html), ErrorType::Html, "<b>", &id);
        assert!(html.contains("<p>&lt;b&gt;.</p>"), "{html}");
        assert_eq!(fill("100%% %s", ErrorType::Plain, "sure", &id), "100% sure");
        assert_eq!(fill("only %s", ErrorType::Plain, "this", &id), "only this");
    }

    mod properties {
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_accept_header_is_read_without_panicking(accept in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = super::super::from_accept(&accept);
            }

            #[test]
            fn any_accept_made_of_media_ranges_picks_one_of_them(
                items in proptest::collection::vec(("(text|application|image|\\*)/(html|plain|xml|json|png|\\*)", 0u16..=1000), 1..10)
            ) {
                let accept: Vec<String> = items.iter().map(|(m, q)| format!("{m};q={}.{:03}", q / 1000, q % 1000)).collect();
                let chosen = super::super::from_accept(accept.join(", ").as_bytes());
                let top = items.iter().map(|(_, q)| *q).max().unwrap();
                if top == 0 {
                    prop_assert_eq!(chosen, None);
                } else {
                    let first = items.iter().find(|(_, q)| *q == top).unwrap();
                    prop_assert_eq!(chosen, Some(super::super::of_media(first.0.as_bytes())));
                }
            }
        }
    }
}
