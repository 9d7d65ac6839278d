use serde_json::json;

use super::*;
use crate::store::lmdb::LmdbStore;

fn plugins() -> Arc<crate::entities::PluginRegistry> {
    Arc::new(crate::entities::plugins::testing::registry())
}

fn target(kind: Kind) -> Target<'static> {
    Target { kind, parent: None, key: None }
}

fn keyed(kind: Kind, key: &'static str) -> Target<'static> {
    Target { kind, parent: None, key: Some(key) }
}

#[tokio::test]
async fn entities_are_validated_together_and_kept_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entities.lmdb");
    let store: Arc<dyn Store> = Arc::new(LmdbStore::open(&path, 1 << 24).unwrap());
    let catalog = Catalog::open(Some(store), plugins()).unwrap();

    let (state, service) =
        catalog.create(target(Kind::Services), json!({"name": "api", "url": "http://a.test:81/v1"})).await.unwrap();
    let shown = state.render(Kind::Services, service).unwrap();
    assert_eq!(
        (shown["host"].clone(), shown["port"].clone(), shown["path"].clone()),
        (json!("a.test"), json!(81), json!("/v1"))
    );
    assert!(shown["created_at"].as_i64().unwrap() > 0);

    let nested = Target { kind: Kind::Routes, parent: Some(("service", service)), key: None };
    let (_, route) = catalog.create(nested, json!({"name": "r", "paths": ["/a"]})).await.unwrap();

    // A clash on a unique name is 409; a bad field is 400 naming it; a missing reference is a
    // foreign key violation.
    let clash = catalog.create(target(Kind::Services), json!({"name": "api", "host": "b.test"})).await.unwrap_err();
    assert_eq!((clash.status, clash.body["name"].clone()), (409, json!("unique constraint violation")));
    assert_eq!(clash.body["fields"], json!({"name": "api"}));
    let bad = catalog
        .create(target(Kind::Routes), json!({"paths": ["/ok", "nope"], "service": {"id": service.to_string()}}))
        .await
        .unwrap_err();
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["fields"], json!({"paths": [null, "must start with / or ~/"]}));
    let missing = Uuid::new_v4();
    let dangling = catalog
        .create(target(Kind::Routes), json!({"paths": ["/x"], "service": {"id": missing.to_string()}}))
        .await
        .unwrap_err();
    assert_eq!((dangling.status, dangling.body["name"].clone()), (400, json!("foreign key violation")));

    // PATCH with url; the service cannot go while a route uses it.
    catalog.update(keyed(Kind::Services, "api"), json!({"url": "https://c.test"})).await.unwrap();
    let blocked = catalog.delete(keyed(Kind::Services, "api")).await.unwrap_err();
    assert_eq!(blocked.body["message"], "an existing 'routes' entity references this 'services' entity");
    catalog.delete(keyed(Kind::Routes, "r")).await.unwrap();
    assert!(catalog.current().render(Kind::Routes, route).is_none());
    let hash = catalog.current().hash.clone();
    drop(catalog);

    // Reopened from the store: the same entities, the same configuration.
    let store: Arc<dyn Store> = Arc::new(LmdbStore::open(&path, 1 << 24).unwrap());
    let catalog = Catalog::open(Some(store), plugins()).unwrap();
    let state = catalog.current();
    assert_eq!(state.hash, hash);
    let shown = state.render(Kind::Services, service).unwrap();
    assert_eq!(
        (shown["protocol"].clone(), shown["host"].clone(), shown["port"].clone()),
        (json!("https"), json!("c.test"), json!(443))
    );
}

#[tokio::test]
async fn deletes_take_plugins_and_targets_with_them() {
    let catalog = Catalog::open(None, plugins()).unwrap();
    let (_, upstream) = catalog.create(target(Kind::Upstreams), json!({"name": "pool"})).await.unwrap();
    let under = Target { kind: Kind::Targets, parent: Some(("upstream", upstream)), key: None };
    catalog.create(under, json!({"target": "10.0.0.1:80"})).await.unwrap();
    let (_, service) = catalog.create(target(Kind::Services), json!({"name": "s", "host": "pool"})).await.unwrap();
    let on_service = Target { kind: Kind::Plugins, parent: Some(("service", service)), key: None };
    catalog.create(on_service, json!({"name": "cors"})).await.unwrap();
    assert_eq!(catalog.current().config.targets.len(), 1);
    catalog.delete(keyed(Kind::Upstreams, "pool")).await.unwrap();
    catalog.delete(keyed(Kind::Services, "s")).await.unwrap();
    let state = catalog.current();
    assert!(state.config.is_empty(), "{:?}", state.config);
    // Deleting what is not there succeeds.
    catalog.delete(keyed(Kind::Services, "s")).await.unwrap();
}

#[tokio::test]
async fn concurrent_writers_lose_nothing() {
    let catalog = Arc::new(Catalog::open(None, plugins()).unwrap());
    let mut tasks = Vec::new();
    for i in 0..40 {
        let catalog = catalog.clone();
        tasks.push(tokio::spawn(async move {
            catalog.create(target(Kind::Services), json!({"name": format!("s{i}"), "host": "h.test"})).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let state = catalog.current();
    assert_eq!(state.config.services.len(), 40);
    assert_eq!(state.version, 41);
}

#[tokio::test]
async fn a_plugin_the_node_cannot_run_is_refused_with_kongs_answer() {
    let catalog = Catalog::open(None, Arc::new(crate::entities::PluginRegistry::default())).unwrap();
    let refused = catalog.create(target(Kind::Plugins), json!({"name": "key-auth"})).await.unwrap_err();
    let message = "plugin 'key-auth' not enabled; add it to the 'plugins' configuration property";
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        json!({
            "code": 2,
            "name": "schema violation",
            "message": format!("schema violation (name: {message})"),
            "fields": {"name": message},
        })
    );
    assert!(catalog.current().config.is_empty());

    // Unknown config fields of a plugin the node runs are refused too.
    let catalog = Catalog::open(None, plugins()).unwrap();
    let refused = catalog.create(target(Kind::Plugins), json!({"name": "cors", "config": {"origins": ["*"]}})).await;
    assert_eq!(refused.unwrap_err().body["fields"], json!({"config": {"origins": "unknown field"}}));
}

#[tokio::test]
async fn certificates_keep_and_show_their_snis() {
    let catalog = Catalog::open(None, plugins()).unwrap();
    let (a, b) = (crate::certs::cluster_pair(1).unwrap(), crate::certs::cluster_pair(1).unwrap());
    let body = json!({"cert": a.cert_pem, "key": a.key_pem, "snis": ["b.test", "A.test."]});
    let (state, cert) = catalog.create(target(Kind::Certificates), body).await.unwrap();
    assert_eq!(state.render(Kind::Certificates, cert).unwrap()["snis"], json!(["a.test", "b.test"]));
    assert_eq!(state.config.snis.len(), 2);
    assert!(state.config.snis.iter().all(|s| s.certificate.id == cert));
    assert_eq!(state.find(Kind::Certificates, "b.test", None), Some(cert));

    // A name another certificate holds, or one given twice, is refused naming it.
    let taken = json!({"cert": b.cert_pem, "key": b.key_pem, "snis": ["c.test", "a.test"]});
    let refused = catalog.create(target(Kind::Certificates), taken).await.unwrap_err();
    let message = format!("a.test already associated with existing certificate '{cert}'");
    assert_eq!((refused.status, refused.body["fields"].clone()), (400, json!({"snis": message})));
    let twice = json!({"cert": b.cert_pem, "key": b.key_pem, "snis": ["c.test", "c.test"]});
    let refused = catalog.create(target(Kind::Certificates), twice).await.unwrap_err();
    assert_eq!(refused.body["fields"], json!({"snis": "c.test is duplicated"}));

    // PATCH replaces the list; without `snis` it keeps it; `null` clears it.
    let key = cert.to_string();
    let key: &'static str = Box::leak(key.into_boxed_str());
    let (state, _) =
        catalog.update(keyed(Kind::Certificates, key), json!({"snis": ["c.test", "a.test"]})).await.unwrap();
    assert_eq!(state.render(Kind::Certificates, cert).unwrap()["snis"], json!(["a.test", "c.test"]));
    let (state, _) = catalog.update(keyed(Kind::Certificates, key), json!({"tags": ["t"]})).await.unwrap();
    assert_eq!(state.render(Kind::Certificates, cert).unwrap()["snis"], json!(["a.test", "c.test"]));
    let (state, _) = catalog.update(keyed(Kind::Certificates, key), json!({"snis": null})).await.unwrap();
    assert_eq!(state.render(Kind::Certificates, cert).unwrap()["snis"], json!([]));
    assert!(state.config.snis.is_empty());
}

#[tokio::test]
async fn references_name_their_entity_by_any_unique_field() {
    let catalog = Catalog::open(None, plugins()).unwrap();
    let (_, alice) = catalog.create(target(Kind::Consumers), json!({"username": "alice"})).await.unwrap();
    let (_, bob) = catalog.create(target(Kind::Consumers), json!({"custom_id": "b-1"})).await.unwrap();
    let (state, p1) = catalog
        .create(target(Kind::Plugins), json!({"name": "cors", "consumer": {"username": "alice"}}))
        .await
        .unwrap();
    assert_eq!(state.render(Kind::Plugins, p1).unwrap()["consumer"], json!({"id": alice.to_string()}));
    let (state, p2) =
        catalog.create(target(Kind::Plugins), json!({"name": "cors", "consumer": {"custom_id": "b-1"}})).await.unwrap();
    assert_eq!(state.render(Kind::Plugins, p2).unwrap()["consumer"], json!({"id": bob.to_string()}));

    let unresolved = catalog
        .create(target(Kind::Plugins), json!({"name": "key-auth", "consumer": {"username": "carol"}}))
        .await
        .unwrap_err();
    assert_eq!((unresolved.status, unresolved.body["code"].clone()), (400, json!(13)));
    assert_eq!(
        unresolved.body["fields"],
        json!({"consumer": {"username": "the foreign key cannot be resolved with '{username=\"carol\"}' for an existing 'consumers' entity"}})
    );
}
