use proptest::prelude::*;

use super::*;
use crate::telemetry::store::Group;

const NOW: i64 = 1_796_000_000;

#[test]
fn defaults_are_the_last_hour_without_grouping() {
    assert_eq!(Params::parse("", NOW).unwrap(), Params { start: NOW - 3600, end: NOW, group_by: None });
}

#[test]
fn times_are_rfc_3339_or_epoch_seconds() {
    let p = Params::parse("start=2026-12-07T10:00:00Z&end=1796652000&group_by=consumer", NOW).unwrap();
    assert_eq!(p.start, 1_796_637_600);
    assert_eq!(p.end, 1_796_652_000);
    assert_eq!(p.group_by, Some(GroupBy::Consumer));
    let p = Params::parse("start=2026-12-07T11%3A00%3A00%2B01%3A00&end=2026-12-07T10:00:00Z", NOW).unwrap();
    assert_eq!(p.start, p.end);
    assert_eq!(p.minutes(), (1_796_637_600 / 60, 1_796_637_600 / 60));
}

#[test]
fn bad_parameters_are_named() {
    let named = |query: &str| Params::parse(query, NOW).unwrap_err().parameter;
    assert_eq!(named("start=yesterday"), "start");
    assert_eq!(named("end=2026-13-01T00:00:00Z"), "end");
    assert_eq!(named("start=-5"), "start");
    assert_eq!(named("group_by=plugin"), "group_by");
    assert_eq!(named("groupby=service"), "groupby");
    assert_eq!(named("start=10&start=20"), "start");
    assert_eq!(named("start=2000&end=1000"), "start");
    assert_eq!(named("end=99999999999999999999"), "end");
    let message = Params::parse("group_by=x", NOW).unwrap_err().to_string();
    assert!(message.starts_with("invalid parameter 'group_by'"), "{message}");
}

proptest! {
    #[test]
    fn any_query_is_parsed_or_refused_without_a_panic(query in ".{0,200}") {
        if let Ok(p) = Params::parse(&query, NOW) {
            prop_assert!(p.start <= p.end);
        }
    }

    #[test]
    fn any_value_of_a_known_parameter_is_parsed_or_refused_naming_it(
        key in prop::sample::select(vec!["start", "end", "group_by"]), value in "\\PC{0,40}",
    ) {
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair(key, &value).finish();
        if let Err(e) = Params::parse(&query, NOW) {
            prop_assert!(e.parameter == key || (key == "end" && e.parameter == "start"), "{e}");
        }
    }
}

fn sums(calls: u64, latency_bucket: u16) -> Sums {
    Sums {
        calls,
        bytes_in: calls,
        bytes_out: 2 * calls,
        latency: [(latency_bucket, calls)].into(),
        upstream_latency: BTreeMap::new(),
    }
}

#[test]
fn answers_group_and_name_their_rows() {
    let config: Config = crate::entities::parse_str(
        r#"{"_format_version":"3.0","services":[{"id":"00000000-0000-4000-8000-000000000001","name":"orders","url":"http://u"}],
            "consumers":[{"id":"00000000-0000-4000-8000-000000000002","username":"ann"}]}"#,
        true,
        "test",
    )
    .unwrap();
    let service = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    let ann = Uuid::parse_str("00000000-0000-4000-8000-000000000002").unwrap();
    let node = Uuid::from_u128(7);
    let group =
        |consumer, status_class| Group { minute: 1, node, service: Some(service), route: None, consumer, status_class };
    let found = Found {
        rows: vec![
            (group(Some(ann), 2), sums(3, 63)),
            (group(None, 4), sums(1, 8)),
            (group(Some(ann), 5), sums(2, 63)),
        ],
        dropped: [(node, 4)].into(),
    };
    let nodes = [(node, "dp-a".to_string())].into();
    let params = |group_by| Params { start: 60, end: 119, group_by };

    let by_consumer = answer(&params(Some(GroupBy::Consumer)), &found, &config, &nodes);
    assert_eq!(by_consumer["group_by"], "consumer");
    assert_eq!(by_consumer["dropped"], 4);
    assert_eq!(by_consumer["start"], "1970-01-01T00:01:00Z");
    let data = by_consumer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["consumer"], json!({"id": ann, "username": "ann"}));
    assert_eq!(data[0]["calls"], 5);
    assert_eq!(data[0]["status"], json!({"2xx": 3, "3xx": 0, "4xx": 0, "5xx": 2}));
    assert_eq!(data[0]["latency_ms"]["p50"], 0.992);
    assert_eq!(data[0]["upstream_latency_ms"]["p50"], Value::Null);
    assert_eq!((data[0]["bytes_in"].as_u64(), data[0]["bytes_out"].as_u64()), (Some(5), Some(10)));
    assert_eq!(data[1]["consumer"], Value::Null);
    assert_eq!(data[1]["status"]["4xx"], 1);

    let by_service = answer(&params(Some(GroupBy::Service)), &found, &config, &nodes);
    assert_eq!(by_service["data"][0]["service"], json!({"id": service, "name": "orders"}));
    assert_eq!(by_service["data"][0]["calls"], 6);
    let by_node = answer(&params(Some(GroupBy::DataPlane)), &found, &config, &nodes);
    assert_eq!(by_node["data"][0]["data_plane"], json!({"id": node, "hostname": "dp-a"}));
    let total = answer(&params(None), &found, &config, &nodes);
    assert_eq!(total["data"][0]["calls"], 6);
    assert!(total["data"][0].get("service").is_none());
}

#[test]
fn billing_lists_months() {
    let months = vec![("2026-11".to_string(), Month { api_calls: 10, services: 2 })];
    assert_eq!(billing(&months), json!({"data": [{"month": "2026-11", "api_calls": 10, "services": 2}]}));
}
