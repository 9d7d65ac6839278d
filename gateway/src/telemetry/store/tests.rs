use proptest::prelude::*;

use super::*;

fn aggregate(minute: u64, service: Option<Uuid>, status_class: u8, calls: u64) -> Aggregate {
    Aggregate {
        minute,
        service,
        route: None,
        consumer: None,
        status_class,
        calls,
        bytes_in: calls,
        bytes_out: 10 * calls,
        latency: vec![(40, calls)],
        upstream_latency: vec![(30, calls)],
    }
}

fn report<'a>(node: Uuid, aggregates: &'a [Aggregate], dropped: u64, services: u64) -> Report<'a> {
    Report { node, sequence: None, hostname: "dp-1", aggregates, dropped, services }
}

#[test]
fn a_batch_sent_twice_is_merged_once_and_a_new_session_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnalyticsStore::open(dir.path(), 7).unwrap();
    let node = Uuid::from_u128(3);
    let batch = [aggregate(10, None, 2, 5)];
    let (first, second) = (Uuid::from_u128(100), Uuid::from_u128(200));
    let send = |session, seq, dropped| {
        let report = Report { sequence: Some(Sequence { session, seq }), ..report(node, &batch, dropped, 1) };
        store.merge(&report, 10).unwrap()
    };
    assert_eq!(send(first, 1, 4), Merged::Added);
    assert_eq!(send(first, 1, 4), Merged::Duplicate);
    assert_eq!(send(first, 2, 0), Merged::Added);
    assert_eq!(send(first, 1, 0), Merged::Duplicate);
    // The data plane restarted: its sequence starts again at 1 in a new session.
    assert_eq!(send(second, 1, 0), Merged::Added);
    let found = store.query(10, 10).unwrap();
    assert_eq!(found.rows[0].1.calls, 15);
    assert_eq!(found.dropped[&node], 4);
}

#[test]
fn flushes_of_the_same_group_add_up_and_ranges_are_by_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnalyticsStore::open(dir.path(), 7).unwrap();
    let (node, service) = (Uuid::from_u128(9), Uuid::from_u128(5));
    store.merge(&report(node, &[aggregate(100, Some(service), 2, 3)], 0, 1), 100).unwrap();
    store.merge(&report(node, &[aggregate(100, Some(service), 2, 4), aggregate(101, None, 5, 1)], 2, 1), 101).unwrap();

    let found = store.query(100, 100).unwrap();
    assert_eq!(found.rows.len(), 1);
    let (group, sums) = &found.rows[0];
    assert_eq!(
        *group,
        Group { minute: 100, node, service: Some(service), route: None, consumer: None, status_class: 2 }
    );
    assert_eq!((sums.calls, sums.bytes_in, sums.bytes_out), (7, 7, 70));
    assert_eq!(sums.latency, BTreeMap::from([(40, 7)]));
    assert!(found.dropped.is_empty());

    let found = store.query(0, u64::MAX - 1).unwrap();
    assert_eq!(found.rows.iter().map(|(_, s)| s.calls).sum::<u64>(), 8);
    assert_eq!(found.dropped, BTreeMap::from([(node, 2)]));
    assert_eq!(store.nodes().unwrap(), BTreeMap::from([(node, "dp-1".to_string())]));
}

#[test]
fn months_count_calls_and_the_most_services_and_outlive_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = AnalyticsStore::open(dir.path(), 1).unwrap();
    let node = Uuid::from_u128(1);
    // 2026-01-31T23:59Z and 2026-02-01T00:00Z.
    let jan = 29_498_399;
    assert_eq!(month_of(jan), "2026-01");
    assert_eq!(month_of(jan + 1), "2026-02");
    store.merge(&report(node, &[aggregate(jan, None, 2, 5)], 0, 3), jan).unwrap();
    store.merge(&report(node, &[aggregate(jan + 1, None, 2, 2)], 0, 2), jan + 1).unwrap();
    // Two days later: the aggregates are past retention, the months stay.
    let later = jan + 2 * 24 * 60;
    store.merge(&report(node, &[], 0, 2), later).unwrap();
    assert!(store.query(0, later).unwrap().rows.is_empty());
    assert_eq!(
        store.months().unwrap(),
        vec![
            ("2026-01".to_string(), Month { api_calls: 5, services: 3 }),
            ("2026-02".to_string(), Month { api_calls: 2, services: 2 }),
        ]
    );
}

#[test]
fn a_reopened_store_keeps_its_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let node = Uuid::from_u128(1);
    {
        let store = AnalyticsStore::open(dir.path(), 7).unwrap();
        store.merge(&report(node, &[aggregate(5, None, 4, 2)], 0, 0), 5).unwrap();
    }
    let store = AnalyticsStore::open(dir.path(), 7).unwrap();
    assert_eq!(store.query(5, 5).unwrap().rows[0].1.calls, 2);
}

fn id() -> impl Strategy<Value = Option<Uuid>> {
    proptest::option::of(any::<u128>().prop_map(Uuid::from_u128))
}

proptest! {
    #[test]
    fn keys_read_back_as_their_group(
        minute in any::<u64>(), node in any::<u128>(), service in id(), route in id(), consumer in id(),
        status_class in any::<u8>(),
    ) {
        let group = Group { minute, node: Uuid::from_u128(node), service, route, consumer, status_class };
        prop_assert_eq!(Group::of_key(&group.key()), Some(group));
    }

    #[test]
    fn keys_sort_by_minute_first(a in any::<u64>(), b in any::<u64>(), na in any::<u128>(), nb in any::<u128>()) {
        let g = |minute, node| Group {
            minute, node: Uuid::from_u128(node), service: None, route: None, consumer: None, status_class: 2,
        };
        if a < b {
            prop_assert!(g(a, na).key() < g(b, nb).key());
        }
    }
}
