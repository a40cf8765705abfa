//! Property tests of the edge: random and mutated messages fed to `decode` and the DLQ record.
//!
//! Whatever the bytes, decoding returns (never panics) either a valid event — which encodes and
//! decodes back to itself — or a rejection with a reason and a detail, which makes a DLQ record
//! that is valid JSON. Cases and seed come from `FEEDFLOW_FUZZ_CASES` (default 1,000 per
//! property) and `FEEDFLOW_FUZZ_SEED` (default fixed, so CI runs are reproducible);
//! `scripts/fuzz-decoder MINUTES` runs them with fresh seeds for as long as asked.

use feedflow_connectors::{decode, encode, DecodeLimits, DlqRecord, Event, EventBody, Position, Rejection};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

const DIMENSIONS: usize = 4;
const LIMITS: DecodeLimits = DecodeLimits { dimensions: DIMENSIONS, max_message_bytes: 4096 };
const POSITION: Position = Position { source: 1, partition: 2, offset: 3 };

/// Valid messages of every type: the seeds that mutations start from.
const VALID: [&str; 6] = [
    r#"{"type":"upload","ts":5,"event_id":"u-1","post_id":42,"creator_id":7,"embedding":[0.1,0.2,0.3,0.4],"category":"food","content_type":"reel","is_public":true,"safety":{"nudity":0.0,"violence":0.0,"hate":0.0,"borderline":0.1}}"#,
    r#"{"type":"upload","ts":9,"post_id":43,"creator_id":8,"embedding":[1,0,0,0]}"#,
    r#"{"type":"engagement","ts":6,"user_id":3,"post_id":42,"kind":"like","dwell_ms":5400,"impression_id":"i-1","event_id":"a\"b"}"#,
    r#"{"type":"engagement","ts":6,"user_id":3,"post_id":42,"kind":"view","dwell_ms":10}"#,
    r#"{"type":"moderation","ts":7,"post_id":42,"action":"block"}"#,
    r#"{"type":"request","ts":8,"request_id":"r-1","user_id":3,"k":7,"context":{"device":"ios","region":"EU"},"shadow":true}"#,
];

/// Field names and values the wire format uses, so mutations reach past the JSON parser.
const KEYS: [&str; 22] = [
    "type",
    "ts",
    "event_id",
    "post_id",
    "creator_id",
    "user_id",
    "embedding",
    "category",
    "content_type",
    "is_public",
    "safety",
    "nudity",
    "kind",
    "dwell_ms",
    "impression_id",
    "action",
    "request_id",
    "k",
    "context",
    "device",
    "region",
    "shadow",
];
const VALUES: [&str; 30] = [
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e309",
    "-0",
    "NaN",
    "Infinity",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "201",
    "200",
    "0.5",
    "\"\"",
    "\"upload\"",
    "\"engagement\"",
    "\"moderation\"",
    "\"request\"",
    "\"like\"",
    "\"poke\"",
    "\"block\"",
    "[]",
    "[1,2,3,4]",
    "[1,2,3,4,5]",
    "[1,null,3,4]",
    "{}",
    "{\"nudity\":2}",
    "\"\\ud800\"",
];

fn config() -> Config {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    Config {
        cases: env("FEEDFLOW_FUZZ_CASES").unwrap_or(1_000) as u32,
        rng_seed: RngSeed::Fixed(env("FEEDFLOW_FUZZ_SEED").unwrap_or(0x5eed_f00d)),
        ..Config::default()
    }
}

/// One edit of a message.
#[derive(Clone, Debug)]
enum Edit {
    /// Overwrite the byte at this position (modulo the length).
    Byte(usize, u8),
    /// Cut the message here.
    Truncate(usize),
    /// Insert these bytes here.
    Insert(usize, Vec<u8>),
    /// Remove this many bytes from here.
    Remove(usize, usize),
    /// Replace the value of one of the message's keys (the n-th present, cyclically) with a wire-format value.
    Value(usize, usize),
    /// Append `,"key":value` before the closing brace (duplicate or unknown fields).
    Field(usize, usize),
    /// Repeat the message (two objects in one message).
    Twice,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Remove(at, n)),
        (0..KEYS.len(), 0..VALUES.len()).prop_map(|(k, v)| Edit::Value(k, v)),
        (0..KEYS.len(), 0..VALUES.len()).prop_map(|(k, v)| Edit::Field(k, v)),
        Just(Edit::Twice),
    ]
}

fn apply(message: &mut Vec<u8>, edit: &Edit) {
    let len = message.len().max(1);
    match edit {
        Edit::Byte(at, b) => {
            if !message.is_empty() {
                message[at % len] = *b;
            }
        }
        Edit::Truncate(at) => message.truncate(at % len),
        Edit::Insert(at, bytes) => {
            let at = at % (message.len() + 1);
            message.splice(at..at, bytes.iter().copied());
        }
        Edit::Remove(at, n) => {
            let at = at % len;
            let end = (at + n).min(message.len());
            if at < end {
                message.drain(at..end);
            }
        }
        Edit::Value(k, v) => {
            let text = String::from_utf8_lossy(message).into_owned();
            // One of the keys the message has, so most edits change a field the decoder reads.
            let present: Vec<String> =
                KEYS.iter().map(|key| format!("\"{key}\":")).filter(|key| text.contains(key.as_str())).collect();
            let Some(key) = present.get(k % present.len().max(1)) else { return };
            if let Some(start) = text.find(key.as_str()).map(|i| i + key.len()) {
                // The old value ends at the next comma or closing brace at this nesting depth.
                let rest = &text[start..];
                let mut depth = 0i32;
                let end = rest
                    .char_indices()
                    .find(|(_, c)| {
                        match c {
                            '[' | '{' => depth += 1,
                            ']' | '}' => depth -= 1,
                            _ => {}
                        }
                        depth < 0 || (depth == 0 && *c == ',')
                    })
                    .map_or(rest.len(), |(i, _)| i);
                *message = format!("{}{}{}", &text[..start], VALUES[*v], &rest[end..]).into_bytes();
            }
        }
        Edit::Field(k, v) => {
            if let Some(close) = message.iter().rposition(|b| *b == b'}') {
                let field = format!(",\"{}\":{}", KEYS[*k], VALUES[*v]);
                message.splice(close..close, field.bytes());
            }
        }
        Edit::Twice => {
            let copy = message.clone();
            message.extend_from_slice(&copy);
        }
    }
}

/// The properties every decode result must have.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    match decode(bytes, POSITION, &LIMITS) {
        Ok(event) => check_event(&event),
        Err(rejection) => check_rejection(bytes, rejection),
    }
}

fn check_event(event: &Event) -> Result<(), TestCaseError> {
    prop_assert!(event.ts >= 0, "negative ts accepted: {event:?}");
    prop_assert_eq!(event.position, POSITION);
    match &event.body {
        EventBody::Upload(u) => {
            prop_assert_eq!(u.embedding.len(), DIMENSIONS);
            prop_assert!(u.embedding.iter().all(|x| x.is_finite()), "non-finite embedding accepted: {:?}", u);
            let s = &u.safety;
            prop_assert!([s.nudity, s.violence, s.hate, s.borderline].iter().all(|x| x.is_finite()));
        }
        EventBody::Request(r) => prop_assert!((1..=200).contains(&r.k), "k out of range accepted: {}", r.k),
        EventBody::Engagement(_) | EventBody::Moderation(_) => {}
    }
    // What the engine accepted, it can write back: encoding decodes to the same event.
    let again = decode(encode(event).as_bytes(), POSITION, &LIMITS);
    prop_assert_eq!(again.as_ref(), Ok(event), "encode/decode round trip");
    Ok(())
}

fn check_rejection(bytes: &[u8], rejection: Rejection) -> Result<(), TestCaseError> {
    prop_assert!(!rejection.reason.name().is_empty());
    prop_assert!(!rejection.detail.is_empty(), "a rejection without a detail: {rejection:?}");
    // The DLQ record of any rejected message is one line of valid JSON naming the reason.
    let line = DlqRecord::new("fuzz", POSITION, rejection.clone(), bytes).to_json();
    prop_assert!(!line.contains('\n'));
    let record: serde_json::Value = serde_json::from_str(&line).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(record["reason"].as_str(), Some(rejection.reason.name()));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_are_decoded_or_rejected_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_valid_messages_are_decoded_or_rejected_with_a_reason(
        seed in 0..VALID.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut message = VALID[seed].as_bytes().to_vec();
        for e in &edits {
            apply(&mut message, e);
        }
        check(&message)?;
    }

    #[test]
    fn messages_near_the_size_limit_are_handled(seed in 0..VALID.len(), pad in 0usize..(2 * 4096)) {
        // Whitespace padding keeps the JSON valid: the size check alone decides.
        let message = format!("{}{}", VALID[seed], " ".repeat(pad));
        check(message.as_bytes())?;
        let accepted = decode(message.as_bytes(), POSITION, &LIMITS).is_ok();
        prop_assert_eq!(accepted, message.len() <= LIMITS.max_message_bytes, "size {}", message.len());
    }
}

#[test]
fn the_seed_messages_are_valid() {
    for message in VALID {
        let event = decode(message.as_bytes(), POSITION, &LIMITS).unwrap_or_else(|r| panic!("{message}: {r}"));
        check_event(&event).unwrap();
    }
}

/// The mutations reach past the parser: some mutated messages are still valid events, and the
/// rejected ones cover most reasons (a fuzz test that only ever hit `invalid_json` would prove little).
#[test]
fn mutations_reach_valid_events_and_most_reasons() {
    use proptest::strategy::ValueTree;
    // A fixed seed whatever FEEDFLOW_FUZZ_SEED says: this checks the strategy, not the decoder.
    let mut runner = proptest::test_runner::TestRunner::new(Config { rng_seed: RngSeed::Fixed(1), ..config() });
    let strategy = (0..VALID.len(), prop::collection::vec(edit(), 1..4));
    let (mut accepted, mut reasons) = (0usize, std::collections::BTreeSet::new());
    for _ in 0..20_000 {
        let (seed, edits) = strategy.new_tree(&mut runner).expect("a case").current();
        let mut message = VALID[seed].as_bytes().to_vec();
        for e in &edits {
            apply(&mut message, e);
        }
        match decode(&message, POSITION, &LIMITS) {
            Ok(_) => accepted += 1,
            Err(r) => {
                reasons.insert(r.reason.name());
            }
        }
    }
    assert!(accepted >= 500, "only {accepted} of 20,000 mutated messages were valid");
    // Every reason but `oversized` (mutations stay far below the size limit; tested apart).
    assert_eq!(reasons.len(), 9, "rejections covered only {reasons:?}");
}
