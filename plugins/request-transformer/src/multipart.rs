//! `multipart/form-data` bodies (RFC 7578), for Kong's body edits: the parts between the
//! boundary the request's `Content-Type` names, each named by its `Content-Disposition`. Parts the
//! edits leave alone are kept byte for byte (files too); a part an edit makes is a simple text
//! field, as Kong's `set_simple` makes it.

/// A parsed body: its parts in order.
#[derive(Debug)]
pub struct Multipart<'a> {
    boundary: &'a str,
    parts: Vec<Part<'a>>,
}

#[derive(Debug)]
enum Part<'a> {
    /// As the client sent it: headers, blank line, content.
    Sent { name: Option<String>, raw: &'a [u8], content: &'a [u8] },
    /// Made by an edit.
    Made { name: String, value: Vec<u8> },
}

impl Part<'_> {
    fn name(&self) -> Option<&str> {
        match self {
            Part::Sent { name, .. } => name.as_deref(),
            Part::Made { name, .. } => Some(name),
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            Part::Sent { content, .. } => content,
            Part::Made { value, .. } => value,
        }
    }
}

/// Why a body cannot be edited.
#[derive(Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The body is not a sequence of parts closed by the final delimiter.
    Body,
    /// An edit's name or value holds the boundary: written as is, it would split into parts the
    /// client chose.
    Injection,
    /// A part that parsers may read differently: two `Content-Disposition` headers, two `name`
    /// parameters, or a `name*` one. An upstream might find under another name a field an edit
    /// was to remove.
    Ambiguous,
}

/// The `boundary` parameter of a `multipart/form-data` content type: exactly one, of 1 to 70 of
/// RFC 2046's boundary characters (parsers differ on which of two they take).
pub fn boundary(content_type: &str) -> Option<String> {
    let (_, params) = params(content_type)?;
    let mut found = params.into_iter().filter(|(key, _)| key == "boundary").map(|(_, value)| value);
    let boundary = found.next()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    let good = found.next().is_none()
        && (1..=70).contains(&boundary.len())
        && boundary.chars().all(allowed)
        && !boundary.ends_with(' ');
    good.then_some(boundary)
}

/// A header value's first item and its parameters (names lower-cased, values unquoted), split at
/// the `;` outside quoted strings; `None` when a quote is left open.
fn params(value: &str) -> Option<(String, Vec<(String, String)>)> {
    let mut items = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            items.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    if quoted {
        return None;
    }
    items.push(current);
    let mut items = items.into_iter();
    let first = items.next()?.trim().to_ascii_lowercase();
    let params = items
        .filter_map(|item| {
            let (key, value) = item.split_once('=')?;
            Some((key.trim().to_ascii_lowercase(), unquote(value.trim())))
        })
        .collect();
    Some((first, params))
}

/// A parameter's value without its quotes and escapes.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if !escaped && c == '\\' {
                    escaped = true;
                    continue;
                }
                escaped = false;
                out.push(c);
            }
            out
        }
        None => value.to_string(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<'a> Multipart<'a> {
    /// No parts yet (an empty body, which edits may add to).
    pub fn empty(boundary: &'a str) -> Multipart<'a> {
        Multipart { boundary, parts: Vec::new() }
    }

    /// The parts of `body`. The preamble and the epilogue (outside the parts) are dropped.
    pub fn parse(body: &'a [u8], boundary: &'a str) -> Result<Multipart<'a>, Malformed> {
        let delimiter = format!("\r\n--{boundary}");
        // The first delimiter may open the body without the line break before it.
        let mut rest = match body.strip_prefix(&delimiter.as_bytes()[2..]) {
            Some(rest) => rest,
            None => {
                let at = find(body, delimiter.as_bytes()).ok_or(Malformed::Body)?;
                &body[at + delimiter.len()..]
            }
        };
        let mut parts = Vec::new();
        loop {
            if rest.starts_with(b"--") {
                return Ok(Multipart { boundary, parts });
            }
            // Transport padding, then the line break that starts the part.
            let padding = rest.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
            rest = rest[padding..].strip_prefix(b"\r\n").ok_or(Malformed::Body)?;
            let end = find(rest, delimiter.as_bytes()).ok_or(Malformed::Body)?;
            let raw = &rest[..end];
            parts.push(Self::part(raw)?);
            rest = &rest[end + delimiter.len()..];
        }
    }

    fn part(raw: &'a [u8]) -> Result<Part<'a>, Malformed> {
        let (head, content) = if raw.starts_with(b"\r\n") {
            (&raw[..0], &raw[2..])
        } else {
            let at = find(raw, b"\r\n\r\n").ok_or(Malformed::Body)?;
            (&raw[..at], &raw[at + 4..])
        };
        let mut dispositions =
            head.split(|&b| b == b'\n').map(|line| String::from_utf8_lossy(line)).filter_map(|line| {
                let (header, value) = line.trim_end_matches('\r').split_once(':')?;
                header.trim().eq_ignore_ascii_case("content-disposition").then(|| value.to_string())
            });
        let name = match (dispositions.next(), dispositions.next()) {
            (None, _) => None,
            (Some(_), Some(_)) => return Err(Malformed::Ambiguous),
            (Some(value), None) => disposition_name(&value)?,
        };
        Ok(Part::Sent { name, raw, content })
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.parts.iter().position(|p| p.name() == Some(name))
    }

    pub fn has(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Drops every part named `name`.
    pub fn remove(&mut self, name: &str) {
        self.parts.retain(|p| p.name() != Some(name));
    }

    /// Kong's `set_simple`: the first part named `name` becomes a text field holding `value`, in
    /// place; without one, the field is added at the end.
    pub fn set(&mut self, name: &str, value: Vec<u8>) {
        let made = Part::Made { name: name.to_string(), value };
        match self.position(name) {
            Some(at) => self.parts[at] = made,
            None => self.parts.push(made),
        }
    }

    /// Another part named `name` at the end.
    pub fn push(&mut self, name: &str, value: Vec<u8>) {
        self.parts.push(Part::Made { name: name.to_string(), value });
    }

    /// The content of the first part named `name`.
    pub fn value(&self, name: &str) -> Option<Vec<u8>> {
        self.position(name).map(|at| self.parts[at].value().to_vec())
    }

    /// The body, with the same boundary.
    pub fn encode(&self) -> Result<Vec<u8>, Malformed> {
        let delimiter = format!("--{}", self.boundary);
        let mut out = Vec::new();
        for part in &self.parts {
            out.extend_from_slice(delimiter.as_bytes());
            out.extend_from_slice(b"\r\n");
            match part {
                Part::Sent { raw, .. } => out.extend_from_slice(raw),
                Part::Made { name, value } => {
                    if find(value, delimiter.as_bytes()).is_some() || name.contains(&delimiter) {
                        return Err(Malformed::Injection);
                    }
                    out.extend_from_slice(b"Content-Disposition: form-data; name=\"");
                    out.extend_from_slice(escape_name(name).as_bytes());
                    out.extend_from_slice(b"\"\r\n\r\n");
                    out.extend_from_slice(value);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(delimiter.as_bytes());
        out.extend_from_slice(b"--\r\n");
        Ok(out)
    }
}

/// The `name` parameter of a `Content-Disposition: form-data` value (none for another
/// disposition); two of them, or a `name*`, are refused.
fn disposition_name(value: &str) -> Result<Option<String>, Malformed> {
    let (disposition, params) = params(value).ok_or(Malformed::Ambiguous)?;
    if disposition != "form-data" {
        return Ok(None);
    }
    if params.iter().any(|(key, _)| key == "name*") {
        return Err(Malformed::Ambiguous);
    }
    let mut names = params.into_iter().filter(|(key, _)| key == "name").map(|(_, value)| value);
    match (names.next(), names.next()) {
        (_, Some(_)) => Err(Malformed::Ambiguous),
        (name, None) => Ok(name),
    }
}

/// A field name as browsers write it in a `Content-Disposition` header (the HTML standard's
/// percent-escapes for `"`, CR and LF).
fn escape_name(name: &str) -> String {
    name.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n\
line1\r\nline2\r\n--XyZ\r\ncontent-disposition: form-data; name=password\r\n\r\np\r\n--XyZ--\r\nepilogue";

    #[test]
    fn parts_are_found_by_name_and_kept_byte_for_byte() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ").as_deref(), Some("XyZ"));
        assert_eq!(boundary("multipart/form-data; charset=utf-8; Boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary("multipart/form-data"), None);
        let mut body = Multipart::parse(BODY, "XyZ").unwrap();
        assert!(body.has("user") && body.has("file") && body.has("password"));
        assert_eq!(body.value("file").unwrap(), b"line1\r\nline2");
        body.remove("password");
        body.set("user", b"bob".to_vec());
        body.push("role", b"reader".to_vec());
        let edited = String::from_utf8(body.encode().unwrap()).unwrap();
        assert_eq!(
            edited,
            "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n\
line1\r\nline2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"role\"\r\n\r\nreader\r\n--XyZ--\r\n"
        );
        let again = Multipart::parse(edited.as_bytes(), "XyZ").unwrap();
        assert_eq!(again.value("role").unwrap(), b"reader");
        assert!(!again.has("password"));
    }

    #[test]
    fn malformed_bodies_and_injected_boundaries_are_refused() {
        assert_eq!(Multipart::parse(b"--XyZ\r\nno blank line\r\n--XyZ--", "XyZ").unwrap_err(), Malformed::Body);
        assert_eq!(
            Multipart::parse(b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunclosed", "XyZ")
                .unwrap_err(),
            Malformed::Body
        );
        assert_eq!(Multipart::parse(b"no delimiter", "XyZ").unwrap_err(), Malformed::Body);
        let mut body = Multipart::parse(b"--XyZ--\r\n", "XyZ").unwrap();
        body.push("a", b"x\r\n--XyZ\r\nContent-Disposition: form-data; name=\"is_admin\"\r\n\r\ntrue".to_vec());
        assert_eq!(body.encode().unwrap_err(), Malformed::Injection);
    }

    /// What parsers read differently is refused rather than guessed at.
    #[test]
    fn ambiguous_boundaries_and_names_are_refused() {
        assert_eq!(boundary("multipart/form-data; boundary=A; boundary=B"), None, "two boundaries");
        assert_eq!(
            boundary("multipart/form-data; foo=\"x; boundary=A\"; boundary=B").as_deref(),
            Some("B"),
            "a quoted ; is not a separator"
        );
        assert_eq!(boundary("multipart/form-data; boundary=\"a<b\""), None, "not a boundary character");
        assert_eq!(boundary("multipart/form-data; boundary=\"open"), None);
        let body = |disposition: &str| format!("--b\r\n{disposition}\r\n\r\nv\r\n--b--\r\n");
        let parse = |text: String| Multipart::parse(text.as_bytes(), "b").map(|m| m.value("password").is_some());
        assert_eq!(
            parse(body("Content-Disposition: form-data; name=\"x\"; name=\"password\"")),
            Err(Malformed::Ambiguous)
        );
        assert_eq!(parse(body("Content-Disposition: form-data; name*=UTF-8''password")), Err(Malformed::Ambiguous));
        assert_eq!(
            parse(body(
                "Content-Disposition: form-data; name=\"x\"\r\nContent-Disposition: form-data; name=\"password\""
            )),
            Err(Malformed::Ambiguous)
        );
        assert_eq!(parse(body("Content-Disposition: form-data; name=\"pass\\\"word\"")), Ok(false));
        assert_eq!(parse(body("Content-Disposition: form-data; name=\"a;b\"; filename=\"f\"")), Ok(false));
        assert_eq!(parse(body("content-disposition: form-data; NAME=password")), Ok(true));
    }

    proptest! {
        /// Whatever a client sends, parsing ends without a panic, and what parses re-encodes to a
        /// body that parses to the same names.
        #[test]
        fn any_body_parses_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..400), split in 0usize..400) {
            let _ = Multipart::parse(&body, "b");
            let mut framed = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n".to_vec();
            framed.extend_from_slice(&body[..split.min(body.len())]);
            framed.extend_from_slice(b"\r\n--b--\r\n");
            if let Ok(parsed) = Multipart::parse(&framed, "b") {
                let names: Vec<_> = parsed.parts.iter().map(|p| p.name().map(str::to_string)).collect();
                let encoded = parsed.encode().unwrap();
                let again = Multipart::parse(&encoded, "b").unwrap();
                let names_again: Vec<_> = again.parts.iter().map(|p| p.name().map(str::to_string)).collect();
                prop_assert_eq!(names, names_again);
            }
        }
    }
}
