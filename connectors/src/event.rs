//! The typed events of the wire format (DESIGN.md, "Wire format").

use serde::{Deserialize, Serialize};

/// Event time: integer milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where an input record came from, for DLQ records and deterministic tie-breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Index of the source (file = 0; Kafka: topic index).
    pub source: u32,
    /// Kafka partition (0 for files).
    pub partition: u32,
    /// Line number (1-based) in a file, offset in a partition.
    pub offset: u64,
}

/// One validated input event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event time in ms.
    pub ts: Millis,
    /// Producer-assigned id used to drop duplicates, when present.
    pub event_id: Option<String>,
    /// Where it was read.
    pub position: Position,
    /// What happened.
    pub body: EventBody,
}

/// The four event types. Uploads and requests are boxed: engagements, nearly all of the
/// traffic, are small, and every event is moved through several exchanges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EventBody {
    /// A new post.
    Upload(Box<Upload>),
    /// A user acted on a post.
    Engagement(Engagement),
    /// A moderation decision about a post.
    Moderation(Moderation),
    /// A user asks for a page of recommendations.
    Request(Box<Request>),
}

impl EventBody {
    /// The wire name of the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::Upload(_) => "upload",
            EventBody::Engagement(_) => "engagement",
            EventBody::Moderation(_) => "moderation",
            EventBody::Request(_) => "request",
        }
    }
}

/// A new post and its embedding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// The post.
    pub post_id: u64,
    /// Its author.
    pub creator_id: u64,
    /// Exactly `index.dimensions` finite values.
    pub embedding: Vec<f32>,
    /// Free-form category name ("food", …); empty when absent.
    pub category: String,
    /// "reel", "photo", …; empty when absent.
    pub content_type: String,
    /// Private posts are never recommended.
    pub is_public: bool,
    /// Classifier scores in [0, 1].
    pub safety: Safety,
}

/// Safety classifier scores of an upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Safety {
    /// Nudity score.
    pub nudity: f32,
    /// Violence score.
    pub violence: f32,
    /// Hate score.
    pub hate: f32,
    /// Borderline-content score.
    pub borderline: f32,
}

/// Kinds of engagement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EngagementKind {
    /// Saw the post.
    View,
    /// Liked it.
    Like,
    /// Commented.
    Comment,
    /// Saved it.
    Save,
    /// Shared it.
    Share,
    /// Followed the post's creator.
    Follow,
    /// Scrolled past.
    Skip,
    /// Asked not to see it.
    Hide,
    /// Reported it.
    Report,
}

impl EngagementKind {
    /// All kinds, in wire order.
    pub const ALL: [EngagementKind; 9] = [
        Self::View,
        Self::Like,
        Self::Comment,
        Self::Save,
        Self::Share,
        Self::Follow,
        Self::Skip,
        Self::Hide,
        Self::Report,
    ];

    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Like or stronger: what evaluation and the model guard count as a hit.
    pub fn is_positive(self) -> bool {
        matches!(self, Self::Like | Self::Comment | Self::Save | Self::Share | Self::Follow)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Like => "like",
            Self::Comment => "comment",
            Self::Save => "save",
            Self::Share => "share",
            Self::Follow => "follow",
            Self::Skip => "skip",
            Self::Hide => "hide",
            Self::Report => "report",
        }
    }
}

/// A user's action on a post.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Engagement {
    /// Who acted.
    pub user_id: u64,
    /// On which post.
    pub post_id: u64,
    /// What they did.
    pub kind: EngagementKind,
    /// How long they looked, when known.
    pub dwell_ms: Option<u64>,
    /// The impression this engagement answers, when known.
    pub impression_id: Option<String>,
}

/// Moderation actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ModerationAction {
    /// Never recommend again (until unblocked).
    Block,
    /// Lift a block.
    Unblock,
    /// Recommend less.
    Demote,
}

impl ModerationAction {
    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "block" => Some(Self::Block),
            "unblock" => Some(Self::Unblock),
            "demote" => Some(Self::Demote),
            _ => None,
        }
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Unblock => "unblock",
            Self::Demote => "demote",
        }
    }
}

/// A moderation decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moderation {
    /// The post concerned.
    pub post_id: u64,
    /// What to do.
    pub action: ModerationAction,
}

/// A request for a page of recommendations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Caller's id, echoed in the response.
    pub request_id: String,
    /// Who asks.
    pub user_id: u64,
    /// Page size: default 50, at most 200.
    pub k: u32,
    /// Device, when given.
    pub device: Option<String>,
    /// Region, when given.
    pub region: Option<String>,
    /// Answered normally but leaves no trace.
    pub shadow: bool,
}

/// Default page size (DESIGN.md).
pub const DEFAULT_K: u32 = 50;
/// Largest page size (DESIGN.md).
pub const MAX_K: u32 = 200;
