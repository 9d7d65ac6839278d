//! Query strings and `application/x-www-form-urlencoded` bodies as a list of arguments that the
//! transformations edit by name, as Kong edits its argument tables: a name given without `=` is a
//! flag (Kong's `true`), a repeated name has several values. Arguments left alone are written back
//! exactly as they came; the ones edited are percent-encoded as nginx's `encode_args` does.

use std::ops::Range;

/// Arguments read at most, as nginx reads at most 100 for Kong; beyond, they are dropped when the
/// arguments are written back (Kong drops them too), so memory stays bounded.
pub const MAX_ARGS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Flag,
    Text(String),
}

#[derive(Debug, Clone)]
struct Arg {
    name: String,
    val: Val,
    /// Where it was in the source, while it is unchanged.
    raw: Option<Range<usize>>,
}

#[derive(Debug, Clone)]
pub struct Args<'a> {
    src: &'a [u8],
    args: Vec<Arg>,
}

impl<'a> Args<'a> {
    pub fn parse(src: &'a [u8]) -> Args<'a> {
        let mut args = Vec::new();
        let mut start = 0;
        for segment in src.split(|b| *b == b'&') {
            let range = start..start + segment.len();
            start = range.end + 1;
            if segment.is_empty() {
                continue;
            }
            if args.len() == MAX_ARGS {
                break;
            }
            let Some((name, value)) = form_urlencoded::parse(segment).next() else { continue };
            let val = if segment.contains(&b'=') { Val::Text(value.into_owned()) } else { Val::Flag };
            args.push(Arg { name: name.into_owned(), val, raw: Some(range) });
        }
        Args { src, args }
    }

    pub fn has(&self, name: &str) -> bool {
        self.args.iter().any(|a| a.name == name)
    }

    /// The first value of `name` as Kong's templates show it (a flag is `true`).
    pub fn first(&self, name: &str) -> Option<String> {
        self.args.iter().find(|a| a.name == name).map(|a| match &a.val {
            Val::Flag => "true".to_string(),
            Val::Text(text) => text.clone(),
        })
    }

    /// Every argument, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Val)> {
        self.args.iter().map(|a| (a.name.as_str(), &a.val))
    }

    pub fn remove(&mut self, name: &str) {
        self.args.retain(|a| a.name != name);
    }

    /// Kong's rename: every value of `old` becomes `new`'s (whose own values go); false if there
    /// is no `old` or the names are the same.
    pub fn rename(&mut self, old: &str, new: &str) -> bool {
        if old == new || !self.has(old) {
            return false;
        }
        self.remove(new);
        for arg in self.args.iter_mut().filter(|a| a.name == old) {
            arg.name = new.to_string();
            arg.raw = None;
        }
        true
    }

    /// `name` with the single value `value`, in the place of its first, if it is present.
    pub fn replace(&mut self, name: &str, value: &str) -> bool {
        let Some(first) = self.args.iter().position(|a| a.name == name) else { return false };
        self.args[first] = Arg { name: name.to_string(), val: Val::Text(value.to_string()), raw: None };
        let mut i = 0;
        self.args.retain(|a| {
            i += 1;
            i - 1 <= first || a.name != name
        });
        true
    }

    /// `name=value` at the end, if there is no `name`.
    pub fn add(&mut self, name: &str, value: &str) -> bool {
        if self.has(name) {
            return false;
        }
        self.push(name, Val::Text(value.to_string()));
        true
    }

    /// Another value for `name`. Kong's `append_value` turns a lone flag into just the new value.
    pub fn append(&mut self, name: &str, value: &str) {
        let mut existing = self.args.iter().filter(|a| a.name == name);
        if let (Some(Arg { val: Val::Flag, .. }), None) = (existing.next(), existing.next()) {
            self.remove(name);
        }
        self.push(name, Val::Text(value.to_string()));
    }

    pub fn push(&mut self, name: &str, val: Val) {
        self.args.push(Arg { name: name.to_string(), val, raw: None });
    }

    /// The arguments written back, joined by `&`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.src.len() + 16);
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            match &arg.raw {
                Some(range) => out.extend_from_slice(&self.src[range.clone()]),
                None => {
                    escape(arg.name.as_bytes(), &mut out);
                    if let Val::Text(value) = &arg.val {
                        out.push(b'=');
                        escape(value.as_bytes(), &mut out);
                    }
                }
            }
        }
        out
    }
}

/// nginx's `escape_uri` for arguments: everything but letters, digits and `-._~` percent-encoded.
fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn edit(src: &str, f: impl FnOnce(&mut Args)) -> String {
        let mut args = Args::parse(src.as_bytes());
        f(&mut args);
        String::from_utf8(args.encode()).unwrap()
    }

    #[test]
    fn untouched_arguments_are_written_back_as_they_came() {
        assert_eq!(edit("a=%7e&b+c=d%20e&&flag&x=$&+,/:;?@", |_| {}), "a=%7e&b+c=d%20e&flag&x=$&+,/:;?@");
        assert_eq!(edit("", |_| {}), "");
    }

    #[test]
    fn kongs_edits() {
        assert_eq!(edit("a=1&b=2&a=3", |a| a.remove("a")), "b=2");
        assert_eq!(edit("a=1&b=2&a=3", |a| assert!(a.rename("a", "c"))), "c=1&b=2&c=3");
        assert_eq!(edit("a=1&b=2", |a| assert!(a.rename("a", "b"))), "b=1", "the new name's values go");
        assert_eq!(edit("a=1", |a| assert!(!a.rename("x", "y"))), "a=1");
        assert_eq!(edit("a=1", |a| assert!(!a.rename("a", "a"))), "a=1");
        assert_eq!(edit("a=1&b=2&a=3", |a| assert!(a.replace("a", "new value"))), "a=new%20value&b=2");
        assert_eq!(edit("b=2", |a| assert!(!a.replace("a", "x"))), "b=2");
        assert_eq!(edit("flag", |a| assert!(a.replace("flag", "x"))), "flag=x");
        assert_eq!(edit("b=2", |a| assert!(a.add("a", "x&y"))), "b=2&a=x%26y");
        assert_eq!(edit("a=2", |a| assert!(!a.add("a", "x"))), "a=2");
        assert_eq!(edit("flag", |a| assert!(!a.add("flag", "x"))), "flag", "a flag is present");
        assert_eq!(edit("a=1", |a| a.append("a", "2")), "a=1&a=2");
        assert_eq!(edit("", |a| a.append("a", "2")), "a=2");
        assert_eq!(edit("flag", |a| a.append("flag", "2")), "flag=2", "Kong's append_value on true");
        assert_eq!(edit("flag&flag=1", |a| a.append("flag", "2")), "flag&flag=1&flag=2");
        assert_eq!(edit("é=ü", |a| a.push("ñ", Val::Flag)), "é=ü&%C3%B1");
    }

    #[test]
    fn values_read_as_kong_decodes_them() {
        let args = Args::parse(b"a=x+y%21&flag&e=");
        assert_eq!(args.first("a").as_deref(), Some("x y!"));
        assert_eq!(args.first("flag").as_deref(), Some("true"));
        assert_eq!(args.first("e").as_deref(), Some(""));
        assert_eq!(args.first("none"), None);
    }

    #[test]
    fn arguments_beyond_the_limit_are_dropped() {
        let many = vec!["a=1"; MAX_ARGS + 5].join("&");
        let args = Args::parse(many.as_bytes());
        assert_eq!(args.iter().count(), MAX_ARGS);
    }

    proptest! {
        #[test]
        fn parsing_and_writing_back_never_panic(src in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut args = Args::parse(&src);
            let _ = args.encode();
            args.rename("a", "b");
            args.replace("b", "x");
            args.append("c", "y");
            let _ = args.encode();
        }

        #[test]
        fn an_untouched_query_reads_back_less_its_empty_segments(src in "[a-z=&%+0-9]{0,80}") {
            let expected: Vec<&str> = src.split('&').filter(|s| !s.is_empty()).collect();
            let got = String::from_utf8(Args::parse(src.as_bytes()).encode()).unwrap();
            prop_assert_eq!(got, expected.join("&"));
        }

        #[test]
        fn written_values_read_back(name in "[^&=]{1,12}", value in ".{0,30}") {
            let mut args = Args::parse(b"");
            args.push(&name, Val::Text(value.clone()));
            let encoded = args.encode();
            let reread = Args::parse(&encoded);
            prop_assert_eq!(reread.first(&name), Some(value));
        }
    }
}
