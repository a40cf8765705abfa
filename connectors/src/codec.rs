//! JSON codec: bytes in, a validated [`Event`] or a [`Rejection`] out.
//!
//! Transports hand over raw bytes; this module alone interprets them. Nothing
//! here panics on input: every defect becomes a typed rejection that the
//! caller turns into a DLQ record (DESIGN.md §8).

use crate::event::*;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Why an input message was rejected. The snake_case name is the DLQ `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Larger than `input.max_message_bytes`.
    Oversized,
    /// Not a JSON object (syntax error, truncated, not UTF-8, array, …).
    InvalidJson,
    /// `type` is not one of upload, engagement, moderation, request.
    UnknownType,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type or is out of range.
    InvalidField,
    /// The embedding does not have `index.dimensions` values.
    EmbeddingLength,
    /// NaN or infinity where a finite number is required.
    NonFinite,
    /// An engagement `kind` outside the list of DESIGN.md.
    UnknownKind,
    /// A moderation `action` outside block, unblock, demote.
    UnknownAction,
    /// A request `k` outside 1..=200.
    KOutOfRange,
}

impl RejectReason {
    /// Every reason, for counters and reports.
    pub const ALL: [RejectReason; 10] = [
        Self::Oversized,
        Self::InvalidJson,
        Self::UnknownType,
        Self::MissingField,
        Self::InvalidField,
        Self::EmbeddingLength,
        Self::NonFinite,
        Self::UnknownKind,
        Self::UnknownAction,
        Self::KOutOfRange,
    ];

    /// The DLQ name of the reason.
    pub fn name(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::InvalidJson => "invalid_json",
            Self::UnknownType => "unknown_type",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::EmbeddingLength => "embedding_length",
            Self::NonFinite => "non_finite",
            Self::UnknownKind => "unknown_kind",
            Self::UnknownAction => "unknown_action",
            Self::KOutOfRange => "k_out_of_range",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rejected message: the reason and a human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// Limits applied while decoding.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Required embedding length.
    pub dimensions: usize,
    /// Largest message in bytes.
    pub max_message_bytes: usize,
}

impl DecodeLimits {
    /// Limits from a configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self { dimensions: config.index.dimensions, max_message_bytes: config.input.max_message_bytes }
    }
}

/// Every field of every event type, all optional: one pass of the parser,
/// then per-type checks say what is missing.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind_of_event: Option<Cow<'a, str>>,
    ts: Option<i64>,
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    post_id: Option<u64>,
    creator_id: Option<u64>,
    user_id: Option<u64>,
    embedding: Option<Vec<f32>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content_type: Option<Cow<'a, str>>,
    is_public: Option<bool>,
    safety: Option<WireSafety>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    dwell_ms: Option<u64>,
    #[serde(borrow)]
    impression_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    k: Option<i64>,
    #[serde(borrow)]
    context: Option<WireContext<'a>>,
    shadow: Option<bool>,
}

#[derive(Deserialize)]
struct WireSafety {
    nudity: Option<f32>,
    violence: Option<f32>,
    hate: Option<f32>,
    borderline: Option<f32>,
}

#[derive(Deserialize)]
struct WireContext<'a> {
    #[serde(borrow)]
    device: Option<Cow<'a, str>>,
    #[serde(borrow)]
    region: Option<Cow<'a, str>>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn json_error(bytes: &[u8], err: serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let text = err.to_string();
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Rejection::new(RejectReason::InvalidJson, "not a JSON object");
    }
    match err.classify() {
        Category::Data => Rejection::new(RejectReason::InvalidField, text),
        _ if text.contains("number out of range") || contains(bytes, b"NaN") || contains(bytes, b"Infinity") => {
            Rejection::new(RejectReason::NonFinite, text)
        }
        _ => Rejection::new(RejectReason::InvalidJson, text),
    }
}

fn require<T>(value: Option<T>, name: &str, of: &str) -> Result<T, Rejection> {
    value.ok_or_else(|| Rejection::new(RejectReason::MissingField, format!("{of} needs `{name}`")))
}

fn finite(value: f32, name: &str) -> Result<f32, Rejection> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Rejection::new(RejectReason::NonFinite, format!("`{name}` is {value}")))
    }
}

/// The `ts` of a message without decoding it: the integer after the first `"ts":` key (a `"ts"`
/// preceded by `{` or `,`, whitespace aside), if any. Cheap and total: any bytes give an answer,
/// so readers of different shares of a log agree on it for every line, valid or not.
pub fn peek_ts(bytes: &[u8]) -> Option<i64> {
    let mut from = 0;
    while let Some(found) = bytes[from..].windows(5).position(|w| w == b"\"ts\":") {
        let at = from + found;
        from = at + 5;
        let before = bytes[..at].iter().rev().find(|b| !b.is_ascii_whitespace());
        if !matches!(before, Some(b'{') | Some(b',')) {
            continue;
        }
        let rest = &bytes[from..];
        let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
        let digits = &rest[start..];
        let (negative, digits) = match digits.first() {
            Some(b'-') => (true, &digits[1..]),
            _ => (false, digits),
        };
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        let value: i64 = std::str::from_utf8(&digits[..len]).ok()?.parse().ok()?;
        return Some(if negative { -value } else { value });
    }
    None
}

/// Decodes and validates one message. `position` is recorded in the event.
pub fn decode(bytes: &[u8], position: Position, limits: &DecodeLimits) -> Result<Event, Rejection> {
    if bytes.len() > limits.max_message_bytes {
        return Err(Rejection::new(
            RejectReason::Oversized,
            format!("{} bytes, limit {}", bytes.len(), limits.max_message_bytes),
        ));
    }
    // Valid UTF-8 as a whole (one fast pass) spares serde_json a check per string; otherwise it
    // reads the bytes and reports the error where it finds it, as it always did.
    let wire: Wire = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
    .map_err(|e| json_error(bytes, e))?;
    let type_name = require(wire.kind_of_event.as_deref(), "type", "an event")?;
    let ts = require(wire.ts, "ts", type_name)?;
    if ts < 0 {
        return Err(Rejection::new(RejectReason::InvalidField, format!("`ts` must be ≥ 0, got {ts}")));
    }
    let body = match type_name {
        "upload" => {
            let post_id = require(wire.post_id, "post_id", "upload")?;
            let creator_id = require(wire.creator_id, "creator_id", "upload")?;
            let embedding = require(wire.embedding, "embedding", "upload")?;
            if embedding.len() != limits.dimensions {
                return Err(Rejection::new(
                    RejectReason::EmbeddingLength,
                    format!("embedding has {} values, expected {}", embedding.len(), limits.dimensions),
                ));
            }
            if let Some(i) = embedding.iter().position(|v| !v.is_finite()) {
                return Err(Rejection::new(RejectReason::NonFinite, format!("embedding[{i}] is {}", embedding[i])));
            }
            let safety = match wire.safety {
                None => Safety::default(),
                Some(s) => {
                    let mut out = Safety::default();
                    for (name, v, slot) in [
                        ("nudity", s.nudity, &mut out.nudity),
                        ("violence", s.violence, &mut out.violence),
                        ("hate", s.hate, &mut out.hate),
                        ("borderline", s.borderline, &mut out.borderline),
                    ] {
                        let v = finite(v.unwrap_or(0.0), name)?;
                        if !(0.0..=1.0).contains(&v) {
                            return Err(Rejection::new(
                                RejectReason::InvalidField,
                                format!("safety.{name} must be in [0, 1], got {v}"),
                            ));
                        }
                        *slot = v;
                    }
                    out
                }
            };
            EventBody::Upload(Box::new(Upload {
                post_id,
                creator_id,
                embedding,
                category: wire.category.map(Cow::into_owned).unwrap_or_default(),
                content_type: wire.content_type.map(Cow::into_owned).unwrap_or_default(),
                is_public: wire.is_public.unwrap_or(true),
                safety,
            }))
        }
        "engagement" => {
            let user_id = require(wire.user_id, "user_id", "engagement")?;
            let post_id = require(wire.post_id, "post_id", "engagement")?;
            let kind_name = require(wire.kind.as_deref(), "kind", "engagement")?;
            let kind = EngagementKind::parse(kind_name).ok_or_else(|| {
                Rejection::new(RejectReason::UnknownKind, format!("unknown engagement kind {kind_name:?}"))
            })?;
            EventBody::Engagement(Engagement {
                user_id,
                post_id,
                kind,
                dwell_ms: wire.dwell_ms,
                impression_id: wire.impression_id.map(Cow::into_owned),
            })
        }
        "moderation" => {
            let post_id = require(wire.post_id, "post_id", "moderation")?;
            let name = require(wire.action.as_deref(), "action", "moderation")?;
            let action = ModerationAction::parse(name).ok_or_else(|| {
                Rejection::new(RejectReason::UnknownAction, format!("unknown moderation action {name:?}"))
            })?;
            EventBody::Moderation(Moderation { post_id, action })
        }
        "request" => {
            let request_id = require(wire.request_id, "request_id", "request")?.into_owned();
            let user_id = require(wire.user_id, "user_id", "request")?;
            let k = wire.k.unwrap_or(DEFAULT_K as i64);
            if !(1..=MAX_K as i64).contains(&k) {
                return Err(Rejection::new(RejectReason::KOutOfRange, format!("k must be in 1..={MAX_K}, got {k}")));
            }
            let (device, region) = match wire.context {
                Some(c) => (c.device.map(Cow::into_owned), c.region.map(Cow::into_owned)),
                None => (None, None),
            };
            EventBody::Request(Box::new(Request {
                request_id,
                user_id,
                k: k as u32,
                device,
                region,
                shadow: wire.shadow.unwrap_or(false),
            }))
        }
        other => {
            return Err(Rejection::new(RejectReason::UnknownType, format!("unknown event type {other:?}")));
        }
    };
    Ok(Event { ts, event_id: wire.event_id.map(Cow::into_owned), position, body })
}

/// Writes an event back in the wire format (used by replay and tests).
pub fn encode(event: &Event) -> String {
    use serde_json::{json, Map, Value};
    let mut m = Map::new();
    m.insert("type".into(), json!(event.body.type_name()));
    m.insert("ts".into(), json!(event.ts));
    if let Some(id) = &event.event_id {
        m.insert("event_id".into(), json!(id));
    }
    match &event.body {
        EventBody::Upload(u) => {
            m.insert("post_id".into(), json!(u.post_id));
            m.insert("creator_id".into(), json!(u.creator_id));
            m.insert("embedding".into(), json!(u.embedding));
            m.insert("category".into(), json!(u.category));
            m.insert("content_type".into(), json!(u.content_type));
            m.insert("is_public".into(), json!(u.is_public));
            let s = &u.safety;
            m.insert(
                "safety".into(),
                json!({"nudity": s.nudity, "violence": s.violence, "hate": s.hate, "borderline": s.borderline}),
            );
        }
        EventBody::Engagement(e) => {
            m.insert("user_id".into(), json!(e.user_id));
            m.insert("post_id".into(), json!(e.post_id));
            m.insert("kind".into(), json!(e.kind.name()));
            if let Some(d) = e.dwell_ms {
                m.insert("dwell_ms".into(), json!(d));
            }
            if let Some(i) = &e.impression_id {
                m.insert("impression_id".into(), json!(i));
            }
        }
        EventBody::Moderation(x) => {
            m.insert("post_id".into(), json!(x.post_id));
            m.insert("action".into(), json!(x.action.name()));
        }
        EventBody::Request(r) => {
            m.insert("request_id".into(), json!(r.request_id));
            m.insert("user_id".into(), json!(r.user_id));
            m.insert("k".into(), json!(r.k));
            let mut ctx = Map::new();
            if let Some(d) = &r.device {
                ctx.insert("device".into(), json!(d));
            }
            if let Some(g) = &r.region {
                ctx.insert("region".into(), json!(g));
            }
            if !ctx.is_empty() {
                m.insert("context".into(), Value::Object(ctx));
            }
            if r.shadow {
                m.insert("shadow".into(), json!(true));
            }
        }
    }
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits { dimensions: 3, max_message_bytes: 65_536 };
    const POS: Position = Position { source: 0, partition: 0, offset: 1 };

    fn reason(text: &str) -> RejectReason {
        decode(text.as_bytes(), POS, &LIMITS).unwrap_err().reason
    }

    #[test]
    fn decodes_every_type() {
        let up = r#"{"type":"upload","ts":5,"post_id":42,"creator_id":7,"embedding":[0.1,0.2,0.3],"category":"food","content_type":"reel","is_public":true,"safety":{"nudity":0.0,"violence":0.0,"hate":0.0,"borderline":0.1},"extra":1}"#;
        let e = decode(up.as_bytes(), POS, &LIMITS).unwrap();
        assert!(
            matches!(&e.body, EventBody::Upload(u) if u.post_id == 42 && u.category == "food" && u.safety.borderline == 0.1)
        );
        let en =
            r#"{"type":"engagement","ts":6,"user_id":3,"post_id":42,"kind":"like","dwell_ms":5400,"event_id":"a\"b"}"#;
        let e = decode(en.as_bytes(), POS, &LIMITS).unwrap();
        assert_eq!(e.event_id.as_deref(), Some("a\"b"));
        assert!(
            matches!(&e.body, EventBody::Engagement(x) if x.kind == EngagementKind::Like && x.dwell_ms == Some(5400))
        );
        let m = r#"{"type":"moderation","ts":7,"post_id":42,"action":"block"}"#;
        assert!(matches!(decode(m.as_bytes(), POS, &LIMITS).unwrap().body, EventBody::Moderation(_)));
        let r = r#"{"type":"request","ts":8,"request_id":"r-1","user_id":3,"context":{"device":"ios"},"shadow":true}"#;
        let e = decode(r.as_bytes(), POS, &LIMITS).unwrap();
        assert!(
            matches!(&e.body, EventBody::Request(q) if q.k == 50 && q.shadow && q.device.as_deref() == Some("ios"))
        );
    }

    #[test]
    fn encode_round_trips() {
        for text in [
            r#"{"type":"upload","ts":5,"post_id":42,"creator_id":7,"embedding":[0.5,0.25,1.0],"category":"food","content_type":"reel","is_public":false}"#,
            r#"{"type":"engagement","ts":6,"user_id":3,"post_id":42,"kind":"view","dwell_ms":10}"#,
            r#"{"type":"moderation","ts":7,"post_id":42,"action":"demote"}"#,
            r#"{"type":"request","ts":8,"request_id":"r-1","user_id":3,"k":7,"context":{"region":"EU"}}"#,
        ] {
            let e = decode(text.as_bytes(), POS, &LIMITS).unwrap();
            let again = decode(encode(&e).as_bytes(), POS, &LIMITS).unwrap();
            assert_eq!(e, again);
        }
    }

    #[test]
    fn rejects_each_defect_with_its_reason() {
        use RejectReason::*;
        assert_eq!(reason("{not json"), InvalidJson);
        assert_eq!(reason("[1,2]"), InvalidJson);
        assert_eq!(reason(r#"{"type":"upload","ts":1,"post_id":1,"creator_id":1,"embed"#), InvalidJson);
        assert_eq!(reason(r#"{"type":"poke","ts":1}"#), UnknownType);
        assert_eq!(peek_ts(br#"{"type":"poke","ts":1}"#), Some(1));
        assert_eq!(peek_ts(br#"{ "ts" : 12 ,"x":1}"#), None, "the key is `\"ts\":` exactly");
        assert_eq!(peek_ts(br#"{"ts": -7}"#), Some(-7));
        assert_eq!(peek_ts(br#"{"event_id":"a\"ts\":9","ts":3}"#), Some(3), "not inside a string");
        assert_eq!(peek_ts(b"not json"), None);
        assert_eq!(peek_ts(br#"{"ts":"5"}"#), None);
        assert_eq!(reason(r#"{"ts":1}"#), MissingField);
        assert_eq!(reason(r#"{"type":"engagement","ts":1,"post_id":2,"kind":"like"}"#), MissingField);
        assert_eq!(reason(r#"{"type":"engagement","ts":1,"user_id":"x","post_id":2,"kind":"like"}"#), InvalidField);
        assert_eq!(reason(r#"{"type":"engagement","ts":-1,"user_id":1,"post_id":2,"kind":"like"}"#), InvalidField);
        assert_eq!(reason(r#"{"type":"engagement","ts":1,"user_id":1,"post_id":2,"kind":"poke"}"#), UnknownKind);
        assert_eq!(reason(r#"{"type":"moderation","ts":1,"post_id":2,"action":"nuke"}"#), UnknownAction);
        assert_eq!(reason(r#"{"type":"request","ts":1,"request_id":"r","user_id":1,"k":201}"#), KOutOfRange);
        assert_eq!(reason(r#"{"type":"request","ts":1,"request_id":"r","user_id":1,"k":0}"#), KOutOfRange);
        assert_eq!(reason(r#"{"type":"upload","ts":1,"post_id":1,"creator_id":1,"embedding":[1,2]}"#), EmbeddingLength);
        assert_eq!(reason(r#"{"type":"upload","ts":1,"post_id":1,"creator_id":1,"embedding":[1,NaN,2]}"#), NonFinite);
        assert_eq!(reason(r#"{"type":"upload","ts":1,"post_id":1,"creator_id":1,"embedding":[1,1e39,2]}"#), NonFinite);
        assert_eq!(reason(r#"{"type":"upload","ts":1,"post_id":1,"creator_id":1,"embedding":[1,1e999,2]}"#), NonFinite);
        assert_eq!(
            reason(r#"{"type":"upload","ts":1,"post_id":1,"creator_id":1,"embedding":[1,2,3],"safety":{"hate":2}}"#),
            InvalidField
        );
        let big = format!(r#"{{"type":"request","ts":1,"request_id":"{}","user_id":1}}"#, "x".repeat(70_000));
        assert_eq!(reason(&big), Oversized);
    }

    #[test]
    fn invalid_utf8_and_empty_input_are_rejected_not_panics() {
        assert_eq!(decode(&[0xff, 0xfe, b'{'], POS, &LIMITS).unwrap_err().reason, RejectReason::InvalidJson);
        assert_eq!(decode(b"", POS, &LIMITS).unwrap_err().reason, RejectReason::InvalidJson);
        assert_eq!(decode(b"{\"type\":\"upload\xff\"}", POS, &LIMITS).unwrap_err().reason, RejectReason::InvalidJson);
    }
}
