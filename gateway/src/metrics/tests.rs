use super::*;

fn facts(service: Option<&str>, route: Option<&str>, consumer: Option<&str>, source: Source) -> (Facts, Instant) {
    let start = Instant::now();
    let facts = Facts {
        service: service.map(Arc::from),
        route: route.map(Arc::from),
        consumer: consumer.map(Arc::from),
        source,
        start,
        upstream: (source == Source::Service).then(|| Duration::from_millis(3)),
        ids: crate::telemetry::Ids::default(),
        method: hyper::Method::GET,
        received: None,
    };
    (facts, start)
}

/// The value of the sample line `name{labels}` in `text`.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn requests_are_counted_per_label_set_across_workers() {
    let metrics = Metrics::new(2);
    for _ in 0..3 {
        let (f, start) = facts(Some("svc"), Some("r1"), Some("alice"), Source::Service);
        metrics.record(f, 200, start + Duration::from_millis(12));
    }
    let (f, start) = facts(None, None, None, Source::Kong);
    metrics.record(f, 404, start);
    let text = encode(Some(&metrics), &Node::default());
    assert_eq!(
        sample(
            &text,
            r#"kong_http_requests_total{service="svc",route="r1",code="200",source="service",workspace="default",consumer="alice"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"kong_http_requests_total{service="",route="",code="404",source="kong",workspace="default",consumer=""}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn latencies_fall_in_kongs_buckets() {
    let metrics = Metrics::new(1);
    let (f, start) = facts(Some("svc"), Some("r1"), None, Source::Service);
    // 12 ms in all, 3 of them the upstream's: Kong's own 9.
    metrics.record(f, 200, start + Duration::from_millis(12));
    let text = encode(Some(&metrics), &Node::default());
    let labels = r#"service="svc",route="r1",workspace="default",consumer="""#;
    let bucket = |name: &str, le: &str| sample(&text, &format!("{name}_bucket{{le=\"{le}\",{labels}}}"));
    assert_eq!(bucket("kong_request_latency_ms", "10.0"), Some(0.0), "{text}");
    assert_eq!(bucket("kong_request_latency_ms", "15.0"), Some(1.0), "{text}");
    assert_eq!(bucket("kong_request_latency_ms", "+Inf"), Some(1.0), "{text}");
    assert_eq!(bucket("kong_upstream_latency_ms", "2.0"), Some(0.0), "{text}");
    assert_eq!(bucket("kong_upstream_latency_ms", "5.0"), Some(1.0), "{text}");
    assert_eq!(bucket("kong_kong_latency_ms", "7.0"), Some(0.0), "{text}");
    assert_eq!(bucket("kong_kong_latency_ms", "10.0"), Some(1.0), "{text}");
    assert_eq!(sample(&text, &format!("kong_request_latency_ms_count{{{labels}}}")), Some(1.0), "{text}");
}

#[test]
fn label_sets_past_the_bound_are_counted_as_dropped() {
    let metrics = Metrics::new(1);
    for consumer in 0..MAX_SERIES + 5 {
        let consumer = consumer.to_string();
        let (f, start) = facts(Some("svc"), Some("r"), Some(&consumer), Source::Service);
        metrics.record(f, 200, start);
    }
    // An existing label set is still counted.
    let (f, start) = facts(Some("svc"), Some("r"), Some("0"), Source::Service);
    metrics.record(f, 200, start);
    let text = encode(Some(&metrics), &Node::default());
    assert_eq!(sample(&text, "gateway_metrics_series_dropped_total"), Some(5.0));
    assert_eq!(
        sample(
            &text,
            r#"kong_http_requests_total{service="svc",route="r",code="200",source="service",workspace="default",consumer="0"}"#
        ),
        Some(2.0)
    );
}

/// Label values are escaped by the encoder: a consumer name cannot break the format.
#[test]
fn hostile_label_values_stay_inside_their_quotes() {
    let metrics = Metrics::new(1);
    let (f, start) = facts(Some("a\"b\\c\nd"), Some("r"), None, Source::Service);
    metrics.record(f, 200, start);
    let text = encode(Some(&metrics), &Node::default());
    assert!(text.contains(r#"service="a\"b\\c\nd""#), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("kong_http_requests_total")).count(), 1);
}
