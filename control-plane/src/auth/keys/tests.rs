use super::*;

/// RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
const JEFE_TAG: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

#[test]
fn mac_is_standard_hmac_sha256() {
    let key = SigningKey::from_bytes(b"Jefe");
    assert_eq!(key.mac_hex("what do ya want for nothing?"), JEFE_TAG);
    // RFC 4231 test case 6: a key longer than the block is hashed first.
    let long = SigningKey::from_bytes(&[0xaa; 131]);
    assert_eq!(
        long.mac_hex("Test Using Larger Than Block-Size Key - Hash Key First"),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn verify_accepts_only_the_exact_tag() {
    let key = SigningKey::from_bytes(b"Jefe");
    let message = "what do ya want for nothing?";
    assert!(key.verify_mac_hex(message, JEFE_TAG));
    // Hex is case-insensitive; the tag is the same bytes.
    assert!(key.verify_mac_hex(message, &JEFE_TAG.to_uppercase()));
    // One flipped digit.
    let mut tampered = JEFE_TAG.to_owned();
    tampered.replace_range(0..1, "6");
    assert!(!key.verify_mac_hex(message, &tampered));
    // Wrong lengths: truncated, extended, empty.
    assert!(!key.verify_mac_hex(message, &JEFE_TAG[..62]));
    assert!(!key.verify_mac_hex(message, &format!("{JEFE_TAG}00")));
    assert!(!key.verify_mac_hex(message, ""));
    // Not hex at all, or an odd number of digits.
    assert!(!key.verify_mac_hex(message, &"zz".repeat(32)));
    assert!(!key.verify_mac_hex(message, &JEFE_TAG[..63]));
    // The right tag for another message, or under another key.
    assert!(!key.verify_mac_hex("another message", JEFE_TAG));
    assert!(!SigningKey::from_bytes(b"Jeff").verify_mac_hex(message, JEFE_TAG));
}

#[test]
fn key_files_are_hex_of_at_least_32_bytes() {
    assert!(SigningKey::from_hex(&"ab".repeat(32)).is_ok());
    assert!(SigningKey::from_hex(&"ab".repeat(31)).is_err());
    assert!(SigningKey::from_hex(&"xy".repeat(32)).is_err());
    assert!(SigningKey::from_hex(&"a".repeat(65)).is_err());
}
