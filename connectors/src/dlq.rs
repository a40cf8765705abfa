//! Dead-letter records: rejected input kept with its origin and reason.

use crate::codec::{RejectReason, Rejection};
use crate::event::Position;
use serde::{Deserialize, Serialize};

/// One rejected input message, as written to the `dlq` output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DlqRecord {
    /// Where it was read: the position first so records sort in input order.
    pub position: Position,
    /// The transport ("file:PATH" or "kafka:TOPIC").
    pub source: String,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub detail: String,
    /// The message exactly as received.
    pub original: Vec<u8>,
}

impl DlqRecord {
    /// Builds a record from a rejection.
    pub fn new(source: &str, position: Position, rejection: Rejection, original: &[u8]) -> Self {
        Self {
            position,
            source: source.to_string(),
            reason: rejection.reason,
            detail: rejection.detail,
            original: original.to_vec(),
        }
    }

    /// The JSON line of the `dlq` output. The original bytes are kept as text
    /// when they are UTF-8, else as base64 under `original_base64`.
    pub fn to_json(&self) -> String {
        let mut m = serde_json::Map::new();
        m.insert("source".into(), self.source.clone().into());
        m.insert("partition".into(), self.position.partition.into());
        m.insert("offset".into(), self.position.offset.into());
        m.insert("reason".into(), self.reason.name().into());
        m.insert("detail".into(), self.detail.clone().into());
        match std::str::from_utf8(&self.original) {
            Ok(text) => m.insert("original".into(), text.into()),
            Err(_) => m.insert("original_base64".into(), base64(&self.original).into()),
        };
        serde_json::Value::Object(m).to_string()
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn non_utf8_originals_are_base64() {
        let rej = Rejection { reason: RejectReason::InvalidJson, detail: "x".into() };
        let pos = Position { source: 0, partition: 0, offset: 3 };
        let json = DlqRecord::new("file:a", pos, rej.clone(), &[0xff, 0x00]).to_json();
        assert!(json.contains("\"original_base64\":\"/wA=\""), "{json}");
        let json = DlqRecord::new("file:a", pos, rej, b"{oops").to_json();
        assert!(json.contains("\"original\":\"{oops\"") && json.contains("\"offset\":3"), "{json}");
    }
}
