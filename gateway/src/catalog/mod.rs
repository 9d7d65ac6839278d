//! The node's entities and the one way to change them. A [`Catalog`] holds every entity as a record
//! (its normalised JSON, creation order and timestamps) and the validated [`Config`] they make. A
//! change is applied to a copy of the records, the whole copy is validated as one declarative
//! document (so unique names, references and every field rule are checked exactly as for a file),
//! the difference is written to the [`Store`] in one transaction, and only then does the new state
//! replace the old one. Writers take turns (no lost updates); readers never wait.

pub mod error;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use uuid::Uuid;

pub use error::ApiError;

use crate::entities::kind::KeyScope;
use crate::entities::unix_now as now;
use crate::entities::{Config, ErrorKind, FieldError, Kind, OnDelete, PluginRegistry, config_hash, parse_value_with};
use crate::store::{Change, Record, Store, StoreError};

/// One entity as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Creation order: routes of equal priority match in this order.
    pub seq: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// Kong's flat declarative shape, normalised (defaults filled, references as `{"id": …}`).
    pub entity: Value,
}

type Key = (Kind, Uuid);

/// A consistent view: the records and the configuration they make.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub records: BTreeMap<Key, Stored>,
    pub config: Arc<Config>,
    pub hash: String,
    /// Bumped by every change.
    pub version: u64,
}

impl State {
    /// The entity as the Admin API shows it: its fields plus `created_at` and `updated_at`, and
    /// for one that expires, `ttl` as the seconds it has left (Kong's Admin API). One that has
    /// expired is not there.
    pub fn render(&self, kind: Kind, id: Uuid) -> Option<Value> {
        let now = now();
        let stored = self.records.get(&(kind, id)).filter(|s| !s.expired(kind, now))?;
        let mut value = render(stored);
        if let Some(at) = stored.expires_at(kind) {
            value["ttl"] = json!((at - now).max(0));
        }
        if kind == Kind::Certificates {
            // Kong shows a certificate with the names of its SNIs, sorted.
            let mut names: Vec<&str> = self
                .list(Kind::Snis, Some(("certificate", id)))
                .into_iter()
                .filter_map(|(_, s)| s.entity.get("name").and_then(Value::as_str))
                .collect();
            names.sort_unstable();
            value["snis"] = json!(names);
        }
        Some(value)
    }

    /// Records of one kind in id order, optionally only those whose `parent_field` is `parent`;
    /// those that have expired left out.
    pub fn list(&self, kind: Kind, parent: Option<(&str, Uuid)>) -> Vec<(Uuid, &Stored)> {
        let now = now();
        self.records
            .range((kind, Uuid::nil())..=(kind, Uuid::max()))
            .filter(|(_, s)| !s.expired(kind, now))
            .filter(|(_, s)| parent.is_none_or(|(field, id)| ref_id(&s.entity, field) == Some(id)))
            .map(|((_, id), s)| (*id, s))
            .collect()
    }

    /// The id of the entity that the `field` link of the `kind` entity `id` points at.
    pub fn linked(&self, kind: Kind, id: Uuid, field: &str) -> Option<Uuid> {
        ref_id(&self.records.get(&(kind, id))?.entity, field)
    }

    /// The id of the `kind` entity that `key` names (an id, or one of the kind's key fields),
    /// within `parent` when given.
    pub fn find(&self, kind: Kind, key: &str, parent: Option<(&str, Uuid)>) -> Option<Uuid> {
        let now = now();
        let within = |id: Uuid| {
            let stored = self.records.get(&(kind, id)).filter(|s| !s.expired(kind, now))?;
            parent.is_none_or(|(field, p)| ref_id(&stored.entity, field) == Some(p)).then_some(id)
        };
        if let Ok(id) = Uuid::parse_str(key)
            && let Some(found) = within(id)
        {
            return Some(found);
        }
        if kind == Kind::Certificates {
            // Kong finds a certificate by one of its SNIs too.
            let sni = self.list(Kind::Snis, None).into_iter().find(|(_, s)| s.entity["name"] == key)?;
            return ref_id(&sni.1.entity, "certificate").and_then(within);
        }
        let descriptor = kind.descriptor();
        if parent.is_none() && descriptor.key_scope == KeyScope::Parent {
            // `/acls/gold` could be any consumer's: only the id names one at the top level.
            return None;
        }
        let fields = descriptor.keys;
        self.list(kind, parent)
            .into_iter()
            .find(|(_, s)| fields.iter().any(|f| s.entity.get(*f).and_then(Value::as_str) == Some(key)))
            .map(|(id, _)| id)
    }
}

impl Stored {
    /// When it expires (seconds since the Unix epoch), for a kind whose entities may.
    fn expires_at(&self, kind: Kind) -> Option<i64> {
        if !kind.descriptor().ttl {
            return None;
        }
        self.entity.get("ttl").and_then(Value::as_i64).filter(|&at| at > 0)
    }

    fn expired(&self, kind: Kind, now: i64) -> bool {
        self.expires_at(kind).is_some_and(|at| at <= now)
    }
}

/// What an Admin API write of one `kind` entity says that the store keeps otherwise: a basic-auth
/// password in clear (hashed here), and Kong's `ttl` option, seconds from now (kept as the time
/// it runs out; 0 or `null`: never).
fn written(kind: Kind, entity: &mut Map<String, Value>) -> Result<(), ApiError> {
    crate::entities::secrets::seal_written(kind, entity);
    let Some(ttl) = entity.get("ttl") else { return Ok(()) };
    if !kind.descriptor().ttl {
        return Ok(()); // the schema refuses the unknown field
    }
    let seconds = match ttl {
        Value::Null => None,
        value => match value.as_i64().filter(|s| (0..=MAX_TTL).contains(s)) {
            Some(seconds) => Some(seconds),
            None => {
                return Err(ApiError::schema(&[("ttl".into(), format!("must be an integer between 0 and {MAX_TTL}"))]));
            }
        },
    };
    let at = seconds.filter(|&s| s > 0).map(|s| now() + s);
    entity.insert("ttl".into(), at.map_or(Value::Null, |at| json!(at)));
    Ok(())
}

/// Kong's largest `ttl` (about three years).
const MAX_TTL: i64 = 100_000_000;

fn render(stored: &Stored) -> Value {
    let mut value = stored.entity.clone();
    if let Value::Object(map) = &mut value {
        map.insert("created_at".into(), json!(stored.created_at));
        map.insert("updated_at".into(), json!(stored.updated_at));
    }
    value
}

/// `entity[field].id` as a UUID.
fn ref_id(entity: &Value, field: &str) -> Option<Uuid> {
    entity.get(field)?.get("id")?.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored entities do not form a valid configuration: {0}")]
    Invalid(String),
}

pub struct Catalog {
    state: ArcSwap<State>,
    writer: tokio::sync::Mutex<()>,
    store: Option<Arc<dyn Store>>,
    version: watch::Sender<u64>,
    /// The plugins entities may use: every write is checked against them.
    plugins: Arc<PluginRegistry>,
    /// On a node that serves what it stores: vault references in certificates must resolve here
    /// (a control plane leaves them to its data planes, which resolve them in their own vaults).
    vaults: Option<crate::conf::vault::Vaults>,
}

/// How a write names the entity it touches.
pub struct Target<'a> {
    pub kind: Kind,
    /// Nested endpoints: the parent's field and id (`/services/{id}/routes` → `("service", id)`).
    pub parent: Option<(&'static str, Uuid)>,
    /// The id or name in the URL, for PUT, PATCH and DELETE.
    pub key: Option<&'a str>,
}

impl Catalog {
    /// A catalog over `store`, loaded from it; `None` keeps entities in memory only (DB-less).
    /// Plugin entities must name a plugin of `plugins`.
    pub fn open(store: Option<Arc<dyn Store>>, plugins: Arc<PluginRegistry>) -> Result<Catalog, CatalogError> {
        let mut records = BTreeMap::new();
        if let Some(store) = &store {
            for Record { kind, id, value } in store.load()? {
                let stored: Stored =
                    serde_json::from_value(value).map_err(|e| CatalogError::Invalid(format!("{kind}/{id}: {e}")))?;
                records.insert((kind, id), stored);
            }
        }
        let config = build(&records, &plugins).map_err(|(errors, _)| {
            CatalogError::Invalid(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?;
        let hash = config_hash(&config);
        let state = State { records, config: Arc::new(config), hash, version: 1 };
        Ok(Catalog {
            state: ArcSwap::from_pointee(state),
            writer: tokio::sync::Mutex::new(()),
            store,
            version: watch::channel(1).0,
            plugins,
            vaults: None,
        })
    }

    /// The plugins entities may use.
    pub fn plugins(&self) -> &PluginRegistry {
        &self.plugins
    }

    pub fn current(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Whether changes are kept (a store is attached) or the node is DB-less.
    pub fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// Wakes on every change; the value is the new version.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// POST: a new entity from `body`.
    pub async fn create(&self, target: Target<'_>, body: Value) -> Result<(Arc<State>, Uuid), ApiError> {
        let _turn = self.writer.lock().await;
        let state = self.current();
        let mut entity = object(body)?;
        let id = match entity.get("id").and_then(Value::as_str) {
            Some(text) => {
                Uuid::parse_str(text).map_err(|_| ApiError::schema(&[("id".into(), "expected a valid UUID".into())]))?
            }
            None => Uuid::new_v4(),
        };
        // An expired entity's id is free again (this write replaces it).
        if state.records.get(&(target.kind, id)).is_some_and(|s| !s.expired(target.kind, now())) {
            return Err(ApiError::unique("id", &json!(id.to_string())));
        }
        entity.insert("id".into(), json!(id.to_string()));
        if let Some((field, parent)) = target.parent {
            entity.insert(field.into(), json!({ "id": parent.to_string() }));
        }
        written(target.kind, &mut entity)?;
        let snis = take_snis(target.kind, &mut entity)?;
        let mut records = state.records.clone();
        let time = now();
        records.insert(
            (target.kind, id),
            Stored { seq: next_seq(&records), created_at: time, updated_at: time, entity: Value::Object(entity) },
        );
        if let Some(names) = snis {
            set_snis(&mut records, id, names)?;
        }
        let state = self.commit(&state, records, Some((target.kind, id))).await?;
        Ok((state, id))
    }

    /// PUT: creates or wholly replaces the entity the URL names.
    pub async fn upsert(&self, target: Target<'_>, body: Value) -> Result<(Arc<State>, Uuid), ApiError> {
        let _turn = self.writer.lock().await;
        let state = self.current();
        let key = target.key.expect("PUT names its entity");
        let mut entity = object(body)?;
        let existing = state.find(target.kind, key, target.parent);
        if Uuid::parse_str(key).is_err()
            && let Some(field) = target.kind.descriptor().keys.first()
        {
            // PUT /services/{name}: the name comes from the URL.
            entity.entry(field.to_string()).or_insert(json!(key));
        }
        let id = match (existing, Uuid::parse_str(key)) {
            (Some(id), _) => id,
            (None, Ok(id)) => id,
            (None, Err(_)) => Uuid::new_v4(),
        };
        if let Some(given) = entity.get("id").and_then(Value::as_str)
            && given != id.to_string()
        {
            return Err(ApiError::schema(&[("id".into(), "does not match the id in the URL".into())]));
        }
        entity.insert("id".into(), json!(id.to_string()));
        if let Some((field, parent)) = target.parent {
            entity.insert(field.into(), json!({ "id": parent.to_string() }));
        }
        written(target.kind, &mut entity)?;
        let snis = take_snis(target.kind, &mut entity)?;
        let mut records = state.records.clone();
        let time = now();
        let stored = match records.get(&(target.kind, id)) {
            Some(old) => Stored { updated_at: time, entity: Value::Object(entity), ..old.clone() },
            None => {
                Stored { seq: next_seq(&records), created_at: time, updated_at: time, entity: Value::Object(entity) }
            }
        };
        records.insert((target.kind, id), stored);
        if let Some(names) = snis {
            set_snis(&mut records, id, names)?;
        }
        let state = self.commit(&state, records, Some((target.kind, id))).await?;
        Ok((state, id))
    }

    /// PATCH: changes the given fields of an existing entity.
    pub async fn update(&self, target: Target<'_>, body: Value) -> Result<(Arc<State>, Uuid), ApiError> {
        let _turn = self.writer.lock().await;
        let state = self.current();
        let key = target.key.expect("PATCH names its entity");
        let id = state.find(target.kind, key, target.parent).ok_or_else(ApiError::not_found)?;
        let mut patch = object(body)?;
        if target.kind == Kind::Services {
            expand_url(&mut patch)?;
        }
        if let Some(given) = patch.get("id").and_then(Value::as_str)
            && given != id.to_string()
        {
            return Err(ApiError::schema(&[("id".into(), "cannot be changed".into())]));
        }
        written(target.kind, &mut patch)?;
        let snis = take_snis(target.kind, &mut patch)?;
        let mut records = state.records.clone();
        let stored = records.get_mut(&(target.kind, id)).expect("found above");
        if let Value::Object(entity) = &mut stored.entity {
            // A reference is replaced whole: `{"name": …}` must not merge into the old `{"id": …}`.
            for field in patch.keys().filter(|f| target.kind.is_link(f)) {
                entity.remove(field);
            }
        }
        merge(&mut stored.entity, Value::Object(patch));
        stored.updated_at = now();
        if let Some(names) = snis {
            set_snis(&mut records, id, names)?;
        }
        let state = self.commit(&state, records, Some((target.kind, id))).await?;
        Ok((state, id))
    }

    /// DELETE: removes the entity and what hangs on it; refuses while others reference it.
    /// Deleting what does not exist succeeds, as in Kong; except through a nested path
    /// (`/services/{s}/routes/{r}`), where a child that is not there, or not the parent's, is 404.
    pub async fn delete(&self, target: Target<'_>) -> Result<(), ApiError> {
        let _turn = self.writer.lock().await;
        let state = self.current();
        let key = target.key.expect("DELETE names its entity");
        let Some(id) = state.find(target.kind, key, target.parent) else {
            return if target.parent.is_some() { Err(ApiError::not_found()) } else { Ok(()) };
        };
        for (kind, link) in target.kind.dependents() {
            if link.on_delete == OnDelete::Restrict && !state.list(kind, Some((link.field, id))).is_empty() {
                return Err(ApiError::referenced_by(target.kind.name(), kind.name()));
            }
        }
        if named_by_a_service(&state, target.kind, id) {
            return Err(ApiError::referenced_by(target.kind.name(), Kind::Services.name()));
        }
        let mut records = state.records.clone();
        remove_with_dependents(&state, &mut records, target.kind, id);
        self.commit(&state, records, None).await?;
        Ok(())
    }

    /// POST /config: the whole configuration replaced by `config` (already validated).
    pub async fn replace(&self, config: &Config) -> Result<Arc<State>, ApiError> {
        let _turn = self.writer.lock().await;
        let state = self.current();
        let records = records_of(config, &state.records);
        self.commit(&state, records, None).await
    }

    /// Every write must leave the certificates' vault references resolvable in `vaults`.
    pub fn resolving_references(mut self, vaults: crate::conf::vault::Vaults) -> Catalog {
        self.vaults = Some(vaults);
        self
    }

    /// Validates `records`, writes what changed, and makes them current.
    async fn commit(
        &self,
        old: &State,
        mut records: BTreeMap<Key, Stored>,
        touched: Option<Key>,
    ) -> Result<Arc<State>, ApiError> {
        // What has expired goes with this change (from the store too), so its unique key is free;
        // except the entity written, which may have run out since it was found (a `PATCH` at its
        // last second): it is written, and the next change sweeps it.
        let now = now();
        records.retain(|key, stored| Some(*key) == touched || !stored.expired(key.0, now));
        let config = match build(&records, &self.plugins) {
            Ok(config) => config,
            Err((errors, paths)) => {
                return Err(explain(&errors, touched.and_then(|k| paths.get(&k).cloned()), &records, touched));
            }
        };
        if let Some(vaults) = &self.vaults
            && let Some(unresolved) = unresolved_reference(&config, vaults)
        {
            return Err(ApiError::schema(&[unresolved]));
        }
        if let Some((kind, id)) = touched {
            // Keep the normalised form: defaults filled, `url` expanded, references by id.
            let normalised = config.entity_json(kind, id).expect("a valid entity is in its config");
            records.get_mut(&(kind, id)).expect("touched exists").entity = normalised;
        }
        let changes = diff(&old.records, &records);
        if let Some(store) = self.store.clone()
            && !changes.is_empty()
        {
            tokio::task::spawn_blocking(move || store.commit(&changes))
                .await
                .expect("a store commit does not panic")
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        let hash = config_hash(&config);
        let state = Arc::new(State { records, config: Arc::new(config), hash, version: old.version + 1 });
        self.state.store(state.clone());
        self.version.send_replace(state.version);
        Ok(state)
    }

    /// DB-less start: the catalog holds `config` (from `declarative_config`).
    pub fn load_config(&self, config: &Config) {
        let old = self.current();
        let records = records_of(config, &old.records);
        let hash = config_hash(config);
        let state = State { records, config: Arc::new(config.clone()), hash, version: old.version + 1 };
        self.state.store(Arc::new(state));
        self.version.send_replace(old.version + 1);
    }
}

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request("the body must be an object")),
    }
}

/// A certificate's `snis` (Kong's transient field: the names of its SNI entities), taken out of
/// `entity`; `None` when not given, an empty list for `null`.
fn take_snis(kind: Kind, entity: &mut Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    if kind != Kind::Certificates {
        return Ok(None);
    }
    let invalid = |message: &str| ApiError::schema(&[("snis".into(), message.into())]);
    match entity.remove("snis") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(items)) => {
            let mut names = Vec::with_capacity(items.len());
            let mut errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) => match crate::entities::validate::sni(name) {
                        Ok(()) => names.push(name.trim_end_matches('.').to_ascii_lowercase()),
                        Err(message) => errors.push((format!("snis[{i}]"), message)),
                    },
                    None => errors.push((format!("snis[{i}]"), "expected a string".into())),
                }
            }
            if !errors.is_empty() {
                return Err(ApiError::schema(&errors));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(invalid(&format!("{twice} is duplicated")));
            }
            Ok(Some(names))
        }
        Some(_) => Err(invalid("expected an array of names")),
    }
}

/// Makes `names` the SNIs of certificate `id`: new names become SNI entities, names no longer
/// listed are deleted; a name that another certificate holds is refused, as Kong does.
fn set_snis(records: &mut BTreeMap<Key, Stored>, id: Uuid, names: Vec<String>) -> Result<(), ApiError> {
    let kind = Kind::Snis;
    let mut held = Vec::new();
    for ((k, sni), stored) in records.iter() {
        if *k != kind {
            continue;
        }
        let name = stored.entity.get("name").and_then(Value::as_str).unwrap_or_default();
        let owner = ref_id(&stored.entity, "certificate");
        if names.iter().any(|n| n == name)
            && let Some(owner) = owner.filter(|o| *o != id)
        {
            return Err(ApiError::schema(&[(
                "snis".into(),
                format!("{name} already associated with existing certificate '{owner}'"),
            )]));
        }
        if owner == Some(id) {
            held.push((*sni, name.to_string()));
        }
    }
    for (sni, name) in &held {
        if !names.contains(name) {
            records.remove(&(kind, *sni));
        }
    }
    let time = now();
    for name in names {
        if held.iter().any(|(_, n)| *n == name) {
            continue;
        }
        let sni = Uuid::new_v4();
        let entity = json!({ "id": sni.to_string(), "name": name, "certificate": { "id": id.to_string() } });
        records.insert((kind, sni), Stored { seq: next_seq(records), created_at: time, updated_at: time, entity });
    }
    Ok(())
}

fn next_seq(records: &BTreeMap<Key, Stored>) -> u64 {
    records.values().map(|s| s.seq).max().map_or(1, |m| m + 1)
}

/// Removes `id` of `kind` from `records`, with every entity that cascades from it (a deleted
/// service takes its plugins; a deleted route its plugins; an upstream its targets).
fn remove_with_dependents(state: &State, records: &mut BTreeMap<Key, Stored>, kind: Kind, id: Uuid) {
    records.remove(&(kind, id));
    for (child_kind, link) in kind.dependents() {
        if link.on_delete == OnDelete::Cascade {
            for (child, _) in state.list(child_kind, Some((link.field, id))) {
                remove_with_dependents(state, records, child_kind, child);
            }
        }
    }
}

/// `url` in a PATCH of a service stands for protocol, host, port and path.
fn expand_url(patch: &mut Map<String, Value>) -> Result<(), ApiError> {
    let Some(url) = patch.remove("url") else { return Ok(()) };
    let text = url.as_str().ok_or_else(|| ApiError::schema(&[("url".into(), "expected a string".into())]))?;
    let parts = crate::entities::validate::service_url(text).map_err(|m| ApiError::schema(&[("url".into(), m)]))?;
    patch.insert("protocol".into(), json!(parts.protocol.as_str()));
    patch.insert("host".into(), json!(parts.host));
    patch.insert("port".into(), json!(parts.port));
    patch.insert("path".into(), parts.path.map_or(Value::Null, Value::String));
    Ok(())
}

/// JSON merge: objects merge field by field, `null` removes, anything else replaces.
fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else if let Some(existing) = target.get_mut(&key)
                    && existing.is_object()
                    && value.is_object()
                {
                    merge(existing, value);
                } else {
                    target.insert(key, value);
                }
            }
        }
        (into, patch) => *into = patch,
    }
}

/// The declarative document the records make (each kind in creation order), and where each
/// record sits in it.
fn document(records: &BTreeMap<Key, Stored>) -> (Value, HashMap<Key, String>) {
    let mut doc = Map::new();
    doc.insert("_format_version".into(), json!("3.0"));
    let mut paths = HashMap::new();
    for kind in Kind::ALL {
        let mut items: Vec<(&Key, &Stored)> = records.iter().filter(|((k, _), _)| *k == kind).collect();
        items.sort_by_key(|(key, stored)| (stored.seq, key.1));
        if items.is_empty() {
            continue;
        }
        let mut list = Vec::with_capacity(items.len());
        for (i, (key, stored)) in items.into_iter().enumerate() {
            paths.insert(*key, format!("{kind}[{i}]"));
            list.push(stored.entity.clone());
        }
        doc.insert(kind.name().to_string(), Value::Array(list));
    }
    (Value::Object(doc), paths)
}

fn build(
    records: &BTreeMap<Key, Stored>,
    plugins: &PluginRegistry,
) -> Result<Config, (Vec<FieldError>, HashMap<Key, String>)> {
    let (doc, paths) = document(records);
    parse_value_with(&doc, plugins).map_err(|errors| (errors, paths))
}

/// Kong's answer for a change the validator refused, chosen by the errors' kinds, in Kong's order:
/// bad fields are a 400 schema violation naming every one; then a reference to nothing is 400
/// (unresolved when named by a unique field, a foreign key violation when by id); then a unique
/// clash is 409.
fn explain(
    errors: &[FieldError],
    path: Option<String>,
    records: &BTreeMap<Key, Stored>,
    touched: Option<Key>,
) -> ApiError {
    let whole = |errors: &[&FieldError]| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        ApiError::bad_request(format!("invalid configuration: {}", text.join("; ")))
    };
    let Some(path) = path else { return whole(&errors.iter().collect::<Vec<_>>()) };
    let (mine, others) = error::relative(errors, &path);
    let entity = touched.and_then(|k| records.get(&k)).map(|s| &s.entity);
    let value_of = |field: &str| entity.and_then(|e| e.get(field)).cloned().unwrap_or(Value::Null);
    let fields: Vec<(String, String)> =
        mine.iter().filter(|(_, e)| e.kind.is_field()).map(|(field, e)| (field.clone(), e.message.clone())).collect();
    if !fields.is_empty() {
        return ApiError::schema(&fields);
    }
    let mut unresolved = Vec::new();
    let mut dangling = None;
    for (field, e) in &mine {
        match &e.kind {
            ErrorKind::Reference { to, by: "id", .. } => dangling = dangling.or(Some((field, *to))),
            ErrorKind::Reference { to, by, value } => unresolved.push((field.clone(), *by, value.clone(), to.name())),
            _ => {}
        }
    }
    if !unresolved.is_empty() {
        return ApiError::unresolved(&unresolved);
    }
    if let Some((field, to)) = dangling {
        return ApiError::foreign_key(field, &value_of(field), to.name());
    }
    // A clash reported here, or at the other entity (the one that comes later in the document).
    let clash = mine
        .iter()
        .map(|(_, e)| *e)
        .chain(others.iter().copied().filter(|e| matches!(&e.kind, ErrorKind::Unique { first, .. } if *first == path)))
        .find_map(|e| match &e.kind {
            ErrorKind::Unique { field, .. } => Some(field.clone()),
            _ => None,
        });
    match clash {
        Some(field) => ApiError::unique(&field, &value_of(&field)),
        None => whole(&others),
    }
}

/// Records for a whole configuration; entities that are unchanged keep their timestamps.
fn records_of(config: &Config, previous: &BTreeMap<Key, Stored>) -> BTreeMap<Key, Stored> {
    let value = serde_json::to_value(config).expect("a config serialises");
    let time = now();
    let mut records = BTreeMap::new();
    let mut seq = 0;
    for kind in Kind::ALL {
        for entity in value.get(kind.name()).and_then(Value::as_array).into_iter().flatten() {
            let Some(id) = entity.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()) else {
                continue;
            };
            seq += 1;
            let stored = match previous.get(&(kind, id)) {
                Some(old) if old.entity == *entity => Stored { seq, ..old.clone() },
                Some(old) => Stored { seq, updated_at: time, entity: entity.clone(), ..old.clone() },
                None => Stored { seq, created_at: time, updated_at: time, entity: entity.clone() },
            };
            records.insert((kind, id), stored);
        }
    }
    records
}

/// The store changes that turn `old` into `new`.
fn diff(old: &BTreeMap<Key, Stored>, new: &BTreeMap<Key, Stored>) -> Vec<Change> {
    let mut changes = Vec::new();
    for ((kind, id), stored) in new {
        if old.get(&(*kind, *id)) != Some(stored) {
            let value = serde_json::to_value(stored).expect("records serialise");
            changes.push(Change::Put(Record { kind: *kind, id: *id, value }));
        }
    }
    for (kind, id) in old.keys() {
        if !new.contains_key(&(*kind, *id)) {
            changes.push(Change::Delete { kind: *kind, id: *id });
        }
    }
    changes
}

/// The first certificate field whose vault reference does not resolve in `vaults`: the field and
/// why (naming the reference and the variable, never a value).
fn unresolved_reference(
    config: &crate::entities::Config,
    vaults: &crate::conf::vault::Vaults,
) -> Option<(String, String)> {
    use crate::conf::vault::is_reference;
    config.certificates.iter().find_map(|c| {
        let fields = [
            ("cert", Some(&c.cert)),
            ("key", Some(&c.key)),
            ("cert_alt", c.cert_alt.as_ref()),
            ("key_alt", c.key_alt.as_ref()),
        ];
        fields.into_iter().find_map(|(field, value)| {
            let value = value.filter(|v| is_reference(v))?;
            vaults.value_of(value).err().map(|e| (field.to_string(), format!("{value}: {e}")))
        })
    })
}

/// Whether a service names certificate or CA certificate `id` in its upstream TLS fields
/// (`client_certificate`, `ca_certificates`): Kong refuses to delete those while they are named.
/// These fields are not descriptor links (a service comes before certificates in a document, and
/// `ca_certificates` is a list), so they are checked here.
fn named_by_a_service(state: &State, kind: Kind, id: Uuid) -> bool {
    let field = match kind {
        Kind::Certificates => "client_certificate",
        Kind::CaCertificates => "ca_certificates",
        _ => return false,
    };
    let id = id.to_string();
    state.list(Kind::Services, None).iter().any(|(_, service)| match &service.entity[field] {
        Value::Object(link) => link.get("id").and_then(Value::as_str) == Some(id.as_str()),
        Value::Array(ids) => ids.iter().any(|v| v.as_str() == Some(id.as_str())),
        _ => false,
    })
}

#[cfg(test)]
mod tests;
