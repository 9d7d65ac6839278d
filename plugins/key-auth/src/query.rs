//! The query string as Kong reads arguments from it (`ngx.req.get_uri_args`): `&`-separated pairs,
//! names and values percent-decoded with `+` as a space, only the first [`MAX_ARGS`]; and the query
//! with one argument taken out for `hide_credentials`, every other pair left byte for byte.

use crate::Found;

/// Arguments read at most (nginx's `lua_max_uri_args` default, which Kong reads them with).
pub const MAX_ARGS: usize = 100;

/// What the query string holds under `name`.
pub fn find(raw: &str, name: &str) -> Found {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .take(MAX_ARGS)
        .filter_map(|pair| {
            let (n, v) = split(pair);
            (n == name).then_some(match v {
                Some(value) => Found::Key(value),
                None => Found::Ignored,
            })
        })
        .fold(Found::Absent, Found::and)
}

/// `raw` without any argument named `name` (anywhere, not only among the first [`MAX_ARGS`]), or
/// `None` when it has none.
pub fn strip(raw: &str, name: &str) -> Option<String> {
    let mut removed = false;
    let kept: Vec<&str> = raw
        .split('&')
        .filter(|pair| {
            let hit = !pair.is_empty() && split(pair).0 == name;
            removed |= hit;
            !hit
        })
        .collect();
    removed.then(|| kept.join("&"))
}

/// A pair's decoded name and value (`None` for a name without `=`, which Kong reads as `true`).
fn split(pair: &str) -> (String, Option<String>) {
    let (name, value) = match pair.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (pair, None),
    };
    (decode(name), value.map(decode))
}

fn decode(part: &str) -> String {
    form_urlencoded::parse(format!("x={part}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kongs_reading() {
        assert_eq!(find("apikey=k1", "apikey"), Found::Key("k1".into()));
        assert_eq!(find("a=1&apikey=k%201&b", "apikey"), Found::Key("k 1".into()));
        assert_eq!(find("apikey=k+1", "apikey"), Found::Key("k 1".into()));
        assert_eq!(find("api%6Bey=k1", "apikey"), Found::Key("k1".into()));
        assert_eq!(find("apikey=", "apikey"), Found::Key(String::new()));
        assert_eq!(find("apikey", "apikey"), Found::Ignored);
        assert_eq!(find("apikey=a&apikey=b", "apikey"), Found::Duplicate);
        assert_eq!(find("apikey=a&apikey", "apikey"), Found::Duplicate);
        assert_eq!(find("APIKEY=a", "apikey"), Found::Absent, "names are case-sensitive");
        assert_eq!(find("", "apikey"), Found::Absent);
        assert_eq!(find("apikey=%ff", "apikey"), Found::Key("\u{fffd}".into()));
    }

    #[test]
    fn only_the_first_hundred_arguments_are_read() {
        let mut raw: Vec<String> = (0..MAX_ARGS).map(|i| format!("a{i}=x")).collect();
        raw.push("apikey=late".into());
        assert_eq!(find(&raw.join("&"), "apikey"), Found::Absent);
    }

    #[test]
    fn stripping_keeps_every_other_pair_as_sent() {
        assert_eq!(strip("a=%41&apikey=k&b=+", "apikey").as_deref(), Some("a=%41&b=+"));
        assert_eq!(strip("apikey=k", "apikey").as_deref(), Some(""));
        assert_eq!(strip("apikey=1&x=2&api%6bey=3&apikey", "apikey").as_deref(), Some("x=2"));
        assert_eq!(strip("a=1&b=2", "apikey"), None);
        assert_eq!(strip("", "apikey"), None);
    }

    proptest! {
        #[test]
        fn never_panics(raw in ".{0,200}", name in "[a-z_-]{1,10}") {
            let _ = find(&raw, &name);
            if let Some(stripped) = strip(&raw, &name) {
                prop_assert_eq!(find(&stripped, &name), Found::Absent);
                prop_assert!(stripped.len() < raw.len());
            }
        }

        #[test]
        fn a_key_is_found_and_stripped(
            before in proptest::collection::vec(("[b-z]{1,5}", "[ -~]{0,8}"), 0..5),
            key in "[ -~]{1,20}",
        ) {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let mut pairs: Vec<String> = before.iter().map(|(n, v)| format!("{n}={}", enc(v))).collect();
            let others = pairs.join("&");
            pairs.push(format!("apikey={}", enc(&key)));
            let raw = pairs.join("&");
            prop_assert_eq!(find(&raw, "apikey"), Found::Key(key));
            prop_assert_eq!(strip(&raw, "apikey"), Some(others));
        }
    }
}
