//! The `name:value` entries of the configuration and the templates in their values. Kong renders
//! a value as a Lua template whose `$(...)` are Lua expressions; this gateway runs no Lua, so it
//! evaluates the simple lookups (`$(headers.name)`, `$(headers["name"])`, `$(query_params.name)`,
//! `$(query_params["name"])`, and a quoted string to write `$(` literally) and refuses any other
//! expression when the configuration is written.

use std::fmt;

/// Kong's `^([^:]+):*(.-)$`: the name up to the first `:`, then the value after every `:` that
/// follows it. `None` when there is no name (an empty entry or one starting with `:`).
pub fn split(entry: &str) -> Option<(&str, &str)> {
    let end = entry.find(':').unwrap_or(entry.len());
    if end == 0 {
        return None;
    }
    Some((&entry[..end], entry[end..].trim_start_matches(':')))
}

/// One part of a rendered value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// A request header, by its lower-case name (`_` read as `-`, as Kong's header table does).
    Header(String),
    /// A query argument of the request, by its exact name.
    Query(String),
}

/// A value, parsed once when configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(pub Vec<Piece>);

/// A `$(...)` this gateway does not evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the template $({}) is not supported: only $(headers.name), $(headers[\"name\"]), \
             $(query_params.name), $(query_params[\"name\"]) and a quoted string are",
            self.0
        )
    }
}

/// What a template reads from the request, as it was when the plugin started on it.
pub trait Env {
    fn header(&self, name: &str) -> Option<String>;
    fn query(&self, name: &str) -> Option<String>;
}

impl Template {
    /// Parses `value`; a `$(` without its balancing `)` is text, as in Kong's templates.
    pub fn parse(value: &str) -> Result<Template, Unsupported> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = value;
        while let Some(at) = rest.find("$(") {
            let Some(len) = balanced(&rest[at + 1..]) else {
                // No `)` closes it: text, and the search goes on after it.
                text.push_str(&rest[..at + 2]);
                rest = &rest[at + 2..];
                continue;
            };
            text.push_str(&rest[..at]);
            let expression = &rest[at + 2..at + len];
            match expression_piece(expression.trim()) {
                Some(Piece::Text(literal)) => text.push_str(&literal),
                Some(piece) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(piece);
                }
                None => return Err(Unsupported(expression.to_string())),
            }
            rest = &rest[at + 1 + len..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    /// The value, when it reads nothing from the request.
    pub fn as_text(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }

    pub fn uses_request(&self) -> bool {
        self.as_text().is_none()
    }

    /// The value for this request: a header or argument that is missing renders empty, one with
    /// several values renders its first.
    pub fn render(&self, env: &dyn Env) -> String {
        if let Some(text) = self.as_text() {
            return text.to_string();
        }
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Header(name) => out.push_str(&env.header(name).unwrap_or_default()),
                Piece::Query(name) => out.push_str(&env.query(name).unwrap_or_default()),
            }
        }
        out
    }
}

/// The length of Lua's `%b()` match at the start of `text` (which starts with `(`), if it closes.
fn balanced(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The lookups this gateway evaluates.
fn expression_piece(expression: &str) -> Option<Piece> {
    if let Some(literal) = quoted(expression) {
        return Some(Piece::Text(literal.to_string()));
    }
    let (table, key) = if let Some(key) = expression.strip_prefix("headers") {
        ("headers", key)
    } else if let Some(key) = expression.strip_prefix("query_params") {
        ("query_params", key)
    } else {
        return None;
    };
    let name = if let Some(field) = key.strip_prefix('.') {
        is_identifier(field).then_some(field)?
    } else {
        let inner = key.strip_prefix('[')?.strip_suffix(']')?.trim();
        quoted(inner)?
    };
    Some(match table {
        "headers" => Piece::Header(name.to_ascii_lowercase().replace('_', "-")),
        _ => Piece::Query(name.to_string()),
    })
}

/// A Lua string literal without escapes: `"text"` or `'text'`.
fn quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = text.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote) && !inner.contains('\\') && !inner.contains('\n')).then_some(inner)
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    struct Map(HashMap<String, String>, HashMap<String, String>);

    impl Env for Map {
        fn header(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn query(&self, name: &str) -> Option<String> {
            self.1.get(name).cloned()
        }
    }

    fn env() -> Map {
        Map(
            HashMap::from([("x-user".into(), "alice".into()), ("host".into(), "example.com".into())]),
            HashMap::from([("q".into(), "1".into()), ("Mixed".into(), "M".into())]),
        )
    }

    #[test]
    fn entries_split_as_kongs_pattern() {
        assert_eq!(split("x-foo:bar"), Some(("x-foo", "bar")));
        assert_eq!(split("x-foo:::bar:baz"), Some(("x-foo", "bar:baz")));
        assert_eq!(split("x-foo"), Some(("x-foo", "")));
        assert_eq!(split("x-foo:"), Some(("x-foo", "")));
        assert_eq!(split(":bar"), None);
        assert_eq!(split(""), None);
        assert_eq!(split("a:b\nc"), Some(("a", "b\nc")));
    }

    #[test]
    fn templates_render_the_simple_lookups() {
        let render = |v: &str| Template::parse(v).unwrap().render(&env());
        assert_eq!(render("plain"), "plain");
        assert_eq!(render("$(headers.x_user)"), "alice");
        assert_eq!(render("$(headers['X-User'])!"), "alice!");
        assert_eq!(render(r#"u=$(headers["x-user"]);q=$(query_params.q)"#), "u=alice;q=1");
        assert_eq!(render("$( query_params[\"Mixed\"] )"), "M");
        assert_eq!(render("$(query_params.mixed)"), "", "query names are exact");
        assert_eq!(render("$(headers.missing)"), "");
        assert_eq!(render("$('$(uri_captures.user1)')"), "$(uri_captures.user1)", "a quoted string escapes");
        assert_eq!(render("cost $(5"), "cost $(5", "unbalanced: text");
        assert_eq!(render("$( $(headers.x_user)"), "$( alice", "the search goes on");
        assert_eq!(render("$(( $(headers.x_user)"), "$(( alice");
        assert_eq!(render("$5 (x)"), "$5 (x)");
        assert_eq!(render(""), "");
        assert!(!Template::parse("a$('b')c").unwrap().uses_request());
        assert!(Template::parse("$(headers.a)").unwrap().uses_request());
    }

    #[test]
    fn other_expressions_are_refused() {
        for value in [
            "$(uri_captures.user1)",
            "$(uri_captures['user1'])",
            "$(shared.my_version)",
            "$(headers.a or 'x')",
            "$(foo())",
            "$(headers[1])",
            "$(headers.a.b)",
            "$(headers)",
            "$(headers.1a)",
            "$(headers['a\\'b'])",
            "ok $(query_params.q) $(10 * uri_captures.user1)",
            "$(uri_captures user2)",
        ] {
            assert!(Template::parse(value).is_err(), "{value}");
        }
        let message = Template::parse("$(shared.v)").unwrap_err().to_string();
        assert!(message.starts_with("the template $(shared.v) is not supported"), "{message}");
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_text_renders_as_itself(value in ".{0,80}") {
            if let Ok(template) = Template::parse(&value) {
                let rendered = template.render(&env());
                if !value.contains("$(") {
                    prop_assert_eq!(rendered, value);
                }
            }
        }

        #[test]
        fn split_never_panics_and_keeps_the_name(entry in ".{0,60}") {
            if let Some((name, value)) = split(&entry) {
                prop_assert!(!name.is_empty() && !name.contains(':'));
                prop_assert!(entry.starts_with(name) && entry.ends_with(value));
                prop_assert!(!value.starts_with(':'));
            } else {
                prop_assert!(entry.is_empty() || entry.starts_with(':'));
            }
        }

        #[test]
        fn header_lookups_render_the_header(name in "[a-z][a-z0-9_]{0,20}", value in "[ -~]{0,30}") {
            let env = Map(HashMap::from([(name.replace('_', "-"), value.clone())]), HashMap::new());
            let dotted = Template::parse(&format!("<$(headers.{name})>")).unwrap();
            prop_assert_eq!(dotted.render(&env), format!("<{value}>"));
            let bracketed = Template::parse(&format!("$(headers[\"{name}\"])")).unwrap();
            prop_assert_eq!(bracketed.render(&env), value);
        }
    }
}
