//! The body edits: the fields of a JSON object, of a form (`application/x-www-form-urlencoded`) or
//! of a `multipart/form-data` body, in Kong's order (remove, rename, replace, add, append; for
//! multipart Kong renames first). A body that does not parse is left as
//! it is; an empty one starts as an empty object or form, so `add` and `append` still apply.

use crate::args::{Args, Val};
use crate::entry::Env;
use crate::object::{Field, Object, Unread, string};
use crate::{Op, Ops};

/// The most top-level fields of a JSON body edited (the time a plugin call may take bounds it).
pub const MAX_FIELDS: usize = 10_000;

/// The edits of one configuration for the body, by operation.
pub struct BodyOps<'a> {
    pub remove: &'a Ops,
    pub rename: &'a Ops,
    pub replace: &'a Ops,
    pub add: &'a Ops,
    pub append: &'a Ops,
}

fn rendered<'o>(ops: &'o [Op], env: &'o dyn Env) -> impl Iterator<Item = (&'o str, String)> + 'o {
    ops.iter().map(move |op| (op.name.as_str(), op.value.render(env)))
}

/// Why a body is not edited.
#[derive(Debug, PartialEq, Eq)]
pub enum Unedited {
    /// Nothing changed, or the body is not what the edits apply to (not a JSON object): it goes
    /// upstream as it came, as in Kong.
    Unchanged,
    /// Too big to edit within a plugin call's budget: it must not go upstream unedited.
    TooBig,
    /// Not the multipart body its `Content-Type` says (or an edit would break its framing): it
    /// must not go upstream unedited either, since an upstream's parser may read it anyway.
    Malformed,
}

/// The edited JSON body.
pub fn json(body: &[u8], ops: &BodyOps<'_>, env: &dyn Env) -> Result<Vec<u8>, Unedited> {
    let had_body = !body.is_empty();
    let mut fields = if had_body {
        match Object::parse(body, MAX_FIELDS) {
            Ok(fields) => fields,
            Err(Unread::NotAnObject) => return Err(Unedited::Unchanged),
            Err(Unread::TooManyFields) => return Err(Unedited::TooBig),
        }
    } else {
        Object::default()
    };
    let truthy = |field: Option<&Field<'_>>| field.is_some_and(|f| !f.is_false());
    let mut changed = false;
    if had_body {
        for op in &ops.remove.body {
            fields.remove(&op.name);
            changed = true;
        }
        for (old, new) in rendered(&ops.rename.body, env) {
            if old != new
                && truthy(fields.get(old))
                && let Some(value) = fields.remove(old)
            {
                fields.insert(&new, value);
                changed = true;
            }
        }
        for (name, value) in rendered(&ops.replace.body, env) {
            if truthy(fields.get(name)) {
                fields.insert(name, Field::Made(string(&value)));
                changed = true;
            }
        }
    }
    for (name, value) in rendered(&ops.add.body, env) {
        if !truthy(fields.get(name)) {
            fields.insert(name, Field::Made(string(&value)));
            changed = true;
        }
    }
    for (name, value) in rendered(&ops.append.body, env) {
        let appended = Field::appended(fields.get(name), &string(&value));
        fields.insert(name, appended);
        changed = true;
    }
    if changed { Ok(fields.to_vec()) } else { Err(Unedited::Unchanged) }
}

/// The edited form body.
pub fn form(body: &[u8], ops: &BodyOps<'_>, env: &dyn Env) -> Result<Vec<u8>, Unedited> {
    let had_body = !body.is_empty();
    let mut args = Args::parse(body);
    let mut changed = false;
    if had_body {
        for op in &ops.remove.body {
            args.remove(&op.name);
            changed = true;
        }
        for (old, new) in rendered(&ops.rename.body, env) {
            changed |= args.rename(old, &new);
        }
        for (name, value) in rendered(&ops.replace.body, env) {
            changed |= args.replace(name, &value);
        }
    }
    for (name, value) in rendered(&ops.add.body, env) {
        changed |= args.add(name, &value);
    }
    for (name, value) in rendered(&ops.append.body, env) {
        args.append(name, &value);
        changed = true;
    }
    if changed { Ok(args.encode()) } else { Err(Unedited::Unchanged) }
}

/// The edited `multipart/form-data` body, whose `Content-Type` is `content_type`. As in Kong,
/// a field an edit writes becomes a simple text field; parts left alone keep their bytes.
pub fn multipart(body: &[u8], content_type: &str, ops: &BodyOps<'_>, env: &dyn Env) -> Result<Vec<u8>, Unedited> {
    let boundary = crate::multipart::boundary(content_type).ok_or(Unedited::Malformed)?;
    let boundary = boundary.as_str();
    let had_body = !body.is_empty();
    let mut parts = if had_body {
        crate::multipart::Multipart::parse(body, boundary).map_err(|_| Unedited::Malformed)?
    } else {
        crate::multipart::Multipart::empty(boundary)
    };
    let mut changed = false;
    if had_body {
        for (old, new) in rendered(&ops.rename.body, env) {
            if old != new
                && let Some(value) = parts.value(old)
            {
                parts.set(&new, value);
                parts.remove(old);
                changed = true;
            }
        }
        for op in &ops.remove.body {
            parts.remove(&op.name);
            changed = true;
        }
        for (name, value) in rendered(&ops.replace.body, env) {
            if parts.has(name) {
                parts.remove(name);
                parts.set(name, value.into_bytes());
                changed = true;
            }
        }
    }
    for (name, value) in rendered(&ops.add.body, env) {
        if !parts.has(name) {
            parts.set(name, value.into_bytes());
            changed = true;
        }
    }
    for (name, value) in rendered(&ops.append.body, env) {
        parts.push(name, value.into_bytes());
        changed = true;
    }
    if !changed {
        return Err(Unedited::Unchanged);
    }
    parts.encode().map_err(|_| Unedited::Malformed)
}

/// The form fields of `body`, for Kong's method change to GET, HEAD or TRACE, which copies them to
/// the query string.
pub fn form_fields(body: &[u8]) -> Vec<(String, Val)> {
    Args::parse(body).iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Template;

    struct NoRequest;

    impl Env for NoRequest {
        fn header(&self, _: &str) -> Option<String> {
            None
        }
        fn query(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn ops(entries: &[&str]) -> Ops {
        let body = entries
            .iter()
            .map(|e| {
                let (name, value) = crate::entry::split(e).unwrap();
                Op { name: name.into(), value: Template::parse(value).unwrap() }
            })
            .collect();
        Ops { body, ..Ops::default() }
    }

    #[test]
    fn json_edits_keep_what_they_do_not_touch() {
        let (remove, none) = (ops(&["password"]), ops(&[]));
        let add = ops(&["added:x"]);
        let edits = BodyOps { remove: &remove, rename: &none, replace: &none, add: &add, append: &none };
        let body = br#"{"big": 123456789012345678901234567890, "password": "p", "nested": {"a": [1.50]}}"#;
        let edited = json(body, &edits, &NoRequest).unwrap();
        assert_eq!(
            String::from_utf8(edited).unwrap(),
            r#"{"big":123456789012345678901234567890,"nested":{"a": [1.50]},"added":"x"}"#
        );
        assert_eq!(json(b"[1]", &edits, &NoRequest), Err(Unedited::Unchanged));
        assert_eq!(json(b"{bad", &edits, &NoRequest), Err(Unedited::Unchanged));
    }

    #[test]
    fn a_json_body_with_too_many_fields_is_not_let_through_unedited() {
        let (remove, none) = (ops(&["is_admin"]), ops(&[]));
        let edits = BodyOps { remove: &remove, rename: &none, replace: &none, add: &none, append: &none };
        let fields: Vec<String> = (0..MAX_FIELDS).map(|i| format!("\"pad{i}\":0")).collect();
        let body = format!("{{{},\"is_admin\":true}}", fields.join(","));
        assert_eq!(json(body.as_bytes(), &edits, &NoRequest), Err(Unedited::TooBig));
    }
}
