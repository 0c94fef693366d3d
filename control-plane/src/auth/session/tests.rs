use super::*;
use http::HeaderValue;

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append(COOKIE, HeaderValue::from_str(v).expect("header"));
    }
    h
}

#[test]
fn cookies_are_found_in_every_cookie_header() {
    let h = headers(&["a=1; corsair_session=tok.en.sig", "b=\"quoted\"; c=x%3By"]);
    assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok.en.sig"));
    assert_eq!(cookie(&h, "b").as_deref(), Some("quoted"));
    assert_eq!(cookie(&h, "c").as_deref(), Some("x;y"));
    assert_eq!(cookie(&h, "corsair"), None);
    assert_eq!(cookie(&headers(&[]), "a"), None);
}

#[test]
fn set_cookie_round_trips_through_the_parser() {
    let value = "ok:Saved; \"quotes\", commas, ünïcode & 100%";
    let set = set_cookie("corsair_flash", value, "/", 60, true);
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=60",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    // A browser sends back the `name=value` part as it got it.
    let pair = set.split(';').next().expect("pair");
    assert!(!pair.contains(' ') && !pair.contains('"'), "{pair}");
    assert_eq!(
        cookie(&headers(&[pair]), "corsair_flash").as_deref(),
        Some(value)
    );
}

#[test]
fn removal_cookies_expire_at_once() {
    let set = clear_session_cookie(false);
    assert!(set.starts_with("corsair_session=;"), "{set}");
    assert!(
        set.contains("Max-Age=0") && !set.contains("Secure"),
        "{set}"
    );
}

#[test]
fn csrf_tokens_are_bound_to_the_session_and_checked_exactly() {
    let keys = SigningKey::from_bytes(&[5; 32]);
    let (one, two) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let token = csrf_for(&keys, one);
    assert_eq!(token.len(), 64);
    assert!(csrf_valid(&keys, one, &token));
    assert!(!csrf_valid(&keys, two, &token), "another session's token");
    assert!(
        !csrf_valid(&SigningKey::from_bytes(&[6; 32]), one, &token),
        "another key"
    );
    assert!(!csrf_valid(&keys, one, &token[..62]), "short");
    assert!(!csrf_valid(&keys, one, &format!("{token}ab")), "long");
    assert!(!csrf_valid(&keys, one, ""), "empty");
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'0' { b'1' } else { b'0' };
    assert!(!csrf_valid(
        &keys,
        one,
        &String::from_utf8(tampered).expect("ascii")
    ));
}
