use std::sync::Mutex;
use std::sync::mpsc;

use serde_json::json;

use super::*;
use crate::store::{Change, Record, Store, StoreError};

/// A store whose commits wait for the test to let them through, so a test can act while a write
/// is between the store and the in-memory state.
struct GatedStore {
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
    records: Mutex<Vec<Change>>,
}

impl Store for GatedStore {
    fn load(&self) -> Result<Vec<Record>, StoreError> {
        Ok(Vec::new())
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        self.entered.lock().unwrap().send(()).unwrap();
        self.release.lock().unwrap().recv().unwrap();
        self.records.lock().unwrap().extend_from_slice(changes);
        Ok(())
    }
}

/// A store that keeps nothing: a node with a database, as far as the Admin API can tell.
struct NullStore;

impl Store for NullStore {
    fn load(&self) -> Result<Vec<Record>, StoreError> {
        Ok(Vec::new())
    }

    fn commit(&self, _changes: &[Change]) -> Result<(), StoreError> {
        Ok(())
    }
}

fn with_store() -> Arc<Catalog> {
    Arc::new(Catalog::open(Some(Arc::new(NullStore)), Arc::new(crate::entities::plugins::testing::registry())).unwrap())
}

fn api(catalog: Arc<Catalog>) -> AdminApi {
    AdminApi::new(catalog, None, json!({}), None, edge::Edge::new(&[], &[], 1 << 20))
}

fn post(path: &str, body: &Value) -> Received {
    Received {
        method: Method::POST,
        path: path.into(),
        query: String::new(),
        content_type: Some("application/json".into()),
        bytes: Bytes::from(body.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_client_goes_away_lands_in_the_store_and_in_memory() {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let store = Arc::new(GatedStore {
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
        records: Mutex::new(Vec::new()),
    });
    let catalog =
        Arc::new(Catalog::open(Some(store.clone()), Arc::new(crate::entities::plugins::testing::registry())).unwrap());
    let api = api(catalog.clone());

    // The connection's future: dropped (as hyper drops it when the client disconnects) while the
    // store commit is under way.
    let request = tokio::spawn({
        let api = api.clone();
        async move { api.answer(post("/services", &json!({"name": "s", "host": "a.test"}))).await }
    });
    tokio::task::spawn_blocking(move || entered.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the write reaches the store");
    request.abort();
    let _ = request.await;
    release.send(()).unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while catalog.current().find(crate::entities::Kind::Services, "s", None).is_none() {
        assert!(std::time::Instant::now() < deadline, "the committed service never reached the in-memory state");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = store.records.lock().unwrap().clone();
    assert!(
        matches!(stored.as_slice(), [Change::Put(Record { kind: crate::entities::Kind::Services, .. })]),
        "the store holds the service: {stored:?}"
    );
}

#[tokio::test]
async fn malformed_values_are_400_never_a_panic() {
    let api = api(with_store());
    for body in [
        json!({"url": "http:a"}),
        json!({"url": "http:"}),
        json!({"url": "http://"}),
        json!({"url": "ftp://a"}),
        json!({"url": 5}),
        json!({"host": "a", "port": "x"}),
        json!({"host": "a", "port": 1e300}),
        json!([]),
    ] {
        let response = api.answer(post("/services", &body)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn writes_need_a_json_yaml_or_form_body() {
    let api = api(with_store());
    let mut request = post("/services", &json!({"name": "s", "host": "a.test"}));
    request.content_type = Some("text/plain".into());
    assert_eq!(api.answer(request).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut request = post("/config", &json!({"_format_version": "3.0"}));
    request.content_type = Some("text/plain".into());
    assert_eq!(api.answer(request).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
