//! The body edits: the fields of a JSON object or of a form (`application/x-www-form-urlencoded`),
//! in Kong's order (remove, rename, replace, add, append). A body that does not parse is left as
//! it is; an empty one starts as an empty object or form, so `add` and `append` still apply.

use serde_json::{Map, Value};

use crate::args::{Args, Val};
use crate::entry::Env;
use crate::{Op, Ops};

/// The edits of one configuration for the body, by operation.
pub struct BodyOps<'a> {
    pub remove: &'a Ops,
    pub rename: &'a Ops,
    pub replace: &'a Ops,
    pub add: &'a Ops,
    pub append: &'a Ops,
}

/// Lua's truth for a JSON value: only `false` (and absence) is false; cjson's `null` is true.
fn truthy(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Bool(false)))
}

fn rendered<'o>(ops: &'o [Op], env: &'o dyn Env) -> impl Iterator<Item = (&'o str, String)> + 'o {
    ops.iter().map(move |op| (op.name.as_str(), op.value.render(env)))
}

/// The edited JSON body, or `None` when it is not an object or nothing changed.
pub fn json(body: &[u8], ops: &BodyOps<'_>, env: &dyn Env) -> Option<Vec<u8>> {
    let had_body = !body.is_empty();
    let mut fields = if had_body {
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => fields,
            _ => return None,
        }
    } else {
        Map::new()
    };
    let mut changed = false;
    if had_body {
        for op in &ops.remove.body {
            fields.remove(&op.name);
            changed = true;
        }
        for (old, new) in rendered(&ops.rename.body, env) {
            if old != new && truthy(fields.get(old)) {
                let value = fields.remove(old).unwrap_or(Value::Null);
                fields.insert(new, value);
                changed = true;
            }
        }
        for (name, value) in rendered(&ops.replace.body, env) {
            if truthy(fields.get(name)) {
                fields.insert(name.to_string(), Value::String(value));
                changed = true;
            }
        }
    }
    for (name, value) in rendered(&ops.add.body, env) {
        if !truthy(fields.get(name)) {
            fields.insert(name.to_string(), Value::String(value));
            changed = true;
        }
    }
    for (name, value) in rendered(&ops.append.body, env) {
        let appended = match fields.remove(name) {
            Some(Value::Array(mut items)) => {
                items.push(Value::String(value));
                items
            }
            Some(Value::String(old)) => vec![Value::String(old), Value::String(value)],
            // Kong's append_value keeps only strings and tables: anything else is replaced.
            _ => vec![Value::String(value)],
        };
        fields.insert(name.to_string(), Value::Array(appended));
        changed = true;
    }
    changed.then(|| serde_json::to_vec(&fields).unwrap_or_else(|_| body.to_vec()))
}

/// The edited form body, or `None` when nothing changed.
pub fn form(body: &[u8], ops: &BodyOps<'_>, env: &dyn Env) -> Option<Vec<u8>> {
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
    changed.then(|| args.encode())
}

/// The form fields of `body`, for Kong's method change to GET, HEAD or TRACE, which copies them to
/// the query string.
pub fn form_fields(body: &[u8]) -> Vec<(String, Val)> {
    Args::parse(body).iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}
