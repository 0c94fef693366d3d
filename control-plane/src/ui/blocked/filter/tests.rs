use super::*;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 18, 30, 0)
        .single()
        .expect("valid time")
}

fn form(pairs: &[(&str, &str)]) -> BlockedForm {
    let text = serde_urlencoded::to_string(pairs).expect("encodes");
    serde_urlencoded::from_str(&text).expect("decodes")
}

#[test]
fn default_is_the_last_24_hours() {
    let r = form(&[]).resolve(now()).expect("valid");
    assert_eq!(r.until, now());
    assert_eq!(r.since, now() - Duration::hours(24));
    assert_eq!(r.filter.service, None);
}

#[test]
fn presets_and_custom_ranges() {
    let r = form(&[("range", "7d")]).resolve(now()).expect("valid");
    assert_eq!(r.until - r.since, Duration::days(7));
    let r = form(&[
        ("since", "2026-11-22T10:00"),
        ("until", "2026-11-22T11:30:15"),
    ])
    .resolve(now())
    .expect("valid");
    assert_eq!(r.since.to_rfc3339(), "2026-11-22T10:00:00+00:00");
    assert_eq!(r.until.to_rfc3339(), "2026-11-22T11:30:15+00:00");
    // A preset wins over stale dates left in the form.
    let r = form(&[("range", "1h"), ("since", "2020-01-01T00:00")])
        .resolve(now())
        .expect("valid");
    assert_eq!(r.since, now() - Duration::hours(1));
    // Custom with only From runs to now.
    let r = form(&[("range", "custom"), ("since", "2026-11-22T18:00:00Z")])
        .resolve(now())
        .expect("valid");
    assert_eq!(r.until, now());
}

#[test]
fn bad_input_is_a_message() {
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("since", "yesterday")],
            "From: \"yesterday\" is not a date",
        ),
        (&[("until", "2026-13-01T00:00")], "To: "),
        (
            &[("since", "2026-11-22T12:00"), ("until", "2026-11-22T11:00")],
            "From must be before To",
        ),
        (
            &[("since", "2020-01-01T00:00"), ("until", "2026-01-01T00:00")],
            "at most 366 days",
        ),
        (&[("range", "forever")], "Choose a range"),
        (&[("origin", "a\0b")], "origin must not contain NUL"),
    ];
    for (pairs, want) in cases {
        let err = form(pairs).resolve(now()).expect_err("invalid");
        assert!(err.contains(want), "{pairs:?}: {err}");
    }
    let err = form(&[("origin_match", "regex")])
        .resolve(now())
        .expect_err("invalid");
    assert!(err.contains("exact or substring"), "{err}");
}

#[test]
fn links_carry_the_filters_and_pin_the_range() {
    let r = form(&[
        ("service", "payments-api"),
        ("origin", "evil&x"),
        ("origin_match", "substring"),
        ("reason", "origin_not_allowed"),
    ])
    .resolve(now())
    .expect("valid");
    assert_eq!(
        r.page_link(Some("5:https://a.test")),
        "/blocked?service=payments-api&origin=evil%26x&origin_match=substring\
         &reason=origin_not_allowed&range=custom&since=2026-11-21T18%3A30%3A00\
         &until=2026-11-22T18%3A30%3A00&after=5%3Ahttps%3A%2F%2Fa.test"
    );
    assert_eq!(
        r.csv_link(Some("origin")),
        "/api/v1/blocked?service=payments-api&origin=evil%26x&origin_match=substring\
         &reason=origin_not_allowed&since=2026-11-21T18%3A30%3A00Z\
         &until=2026-11-22T18%3A30%3A00Z&group_by=origin&limit=10000&format=csv"
    );
    // Empty filters are left out (the API would read `service=` as "no service").
    let r = form(&[]).resolve(now()).expect("valid");
    assert!(!r.csv_link(None).contains("service="));
}
