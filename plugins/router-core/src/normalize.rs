//! Request path normalisation before matching, in Kong's order: upper-case percent-encodings and
//! decode those of unreserved characters, remove dot segments, merge duplicate slashes. Works on
//! bytes, so any string (valid escapes or not) normalises without panicking; whether a request's
//! path is acceptable at all is [`check_request_path`]'s question, asked by the host first.

pub fn normalize_path(path: &str) -> String {
    let decoded = decode_unreserved(path);
    let without_dots = remove_dot_segments(&decoded);
    merge_slashes(&without_dots)
}

/// Why a request path is refused (the request gets 400, as nginx answers such paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits, at this byte offset.
    InvalidEscape { at: usize },
    /// The percent-decoded path is not valid UTF-8.
    NotUtf8,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::InvalidEscape { at } => write!(f, "invalid percent-encoding at byte {at}"),
            PathError::NotUtf8 => f.write_str("the decoded path is not valid UTF-8"),
        }
    }
}

/// Checks a request path as received: every `%` starts a two-hex-digit escape, and the decoded
/// path is valid UTF-8.
pub fn check_request_path(path: &str) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') {
        return Ok(()); // a &str is UTF-8 already
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let b = escape_at(bytes, i).ok_or(PathError::InvalidEscape { at: i })?;
            decoded.push(b);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    std::str::from_utf8(&decoded).map(|_| ()).map_err(|_| PathError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte `%XY` at `i` encodes, if `bytes[i..]` starts with a valid escape.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*bytes.get(i + 1)?)?;
    let lo = hex_value(*bytes.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') {
        return path.to_string();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = escape_at(bytes, i)
        {
            if is_unreserved(b) {
                out.push(b);
            } else {
                out.push(b'%');
                out.extend_from_slice(&bytes[i + 1..i + 3].to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        // Not a valid escape (or not an escape): the byte as it is.
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII triplets were replaced by ASCII bytes, so the input's UTF-8 is intact.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// RFC 3986 section 5.2.4.
fn remove_dot_segments(path: &str) -> String {
    if !path.contains('.') {
        return path.to_string();
    }
    let mut input = path;
    let mut output: Vec<&str> = Vec::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            output.pop();
        } else if input == "/.." {
            input = "/";
            output.pop();
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push(&input[..end]);
            input = &input[end..];
        }
    }
    output.concat()
}

fn merge_slashes(path: &str) -> String {
    if !path.contains("//") {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    let mut last_slash = false;
    for c in path.chars() {
        if c == '/' {
            if !last_slash {
                out.push(c);
            }
            last_slash = true;
        } else {
            out.push(c);
            last_slash = false;
        }
    }
    out
}

/// Whether `path` holds a segment that some server would take for `.` or `..`: segments are split
/// at `/`, `\` and their escapes `%2F`/`%5C` (Windows servers and decoding upstreams split there),
/// and a `;parameter` is ignored (servlet containers read `..;x` as `..`); `%2E` counts as a dot.
pub fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut segment_dots = 0usize; // dots seen in the current segment, before any `;`
    let mut segment_other = false; // anything else seen before a `;`
    let mut in_params = false;
    let mut i = 0;
    let end_segment = |dots: usize, other: bool| !other && (dots == 1 || dots == 2);
    while i <= bytes.len() {
        let (byte, width) = match bytes.get(i) {
            None => (None, 1),
            Some(b'%') => match escape_at(bytes, i) {
                Some(b) => (Some(b), 3),
                None => (Some(b'%'), 1),
            },
            Some(&b) => (Some(b), 1),
        };
        match byte {
            None | Some(b'/' | b'\\') => {
                if end_segment(segment_dots, segment_other) {
                    return true;
                }
                segment_dots = 0;
                segment_other = false;
                in_params = false;
            }
            Some(_) if in_params => {}
            Some(b';') => in_params = true,
            Some(b'.') => segment_dots += 1,
            Some(_) => segment_other = true,
        }
        i += width;
    }
    false
}
