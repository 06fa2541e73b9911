//! Canned responses (A4): personal and team macros an agent inserts by typing `/shortcut`.
//!
//! Each response is an aggregate (`canned-<uuid>`) so edits have an author and a time; the
//! lookup is a projection ([`CannedLibrary`]) because it reads across responses.

use super::common::{
    ConfigRejection, Stamped, TEXT_CHARS_MAX, check_absent, check_key, check_name, check_text,
    live, stamped_decider,
};
use crate::{AgentId, CannedResponseId, EventKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most responses one lookup returns (the agent keeps typing to narrow it).
pub const CANNED_LOOKUP_RESULTS_MAX: usize = 20;

/// Who may use a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CannedScope {
    /// Only this agent.
    Personal(AgentId),
    /// Every agent of the account.
    Team,
}

/// The text fields of a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CannedContent {
    /// Typed after `/` (lowercase letters, digits, `_`).
    pub shortcut: String,
    /// A title for the picker.
    pub title: String,
    /// The text inserted.
    pub body: String,
}

impl CannedContent {
    fn validate(&self) -> Result<(), ConfigRejection> {
        check_key("shortcut", &self.shortcut)?;
        check_name("title", &self.title)?;
        check_text("body", &self.body, TEXT_CHARS_MAX)?;
        if self.body.trim().is_empty() {
            return Err(ConfigRejection::Empty {
                field: "body".to_owned(),
            });
        }
        Ok(())
    }
}

/// A live canned response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedResponse {
    /// Its id.
    pub id: CannedResponseId,
    /// Personal or team.
    pub scope: CannedScope,
    /// Shortcut, title, body.
    pub content: CannedContent,
}

/// The state of a canned response stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CannedState {
    /// The response, once created.
    pub response: Option<CannedResponse>,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// What can be asked of a canned response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CannedCommand {
    /// Create.
    Create {
        /// Minted by the host.
        id: CannedResponseId,
        /// Personal or team.
        scope: CannedScope,
        /// The text.
        content: CannedContent,
    },
    /// Replace the text.
    Update {
        /// The new text.
        content: CannedContent,
    },
    /// Delete.
    Delete,
}

/// What happened to a canned response. Stored inside [`Stamped`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CannedEvent {
    /// Created.
    Created {
        /// Its id.
        id: CannedResponseId,
        /// Personal or team.
        scope: CannedScope,
        /// The text.
        content: CannedContent,
    },
    /// Text replaced.
    Updated {
        /// The new text.
        content: CannedContent,
    },
    /// Deleted.
    Deleted,
}

impl EventKind for CannedEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "CannedResponseCreated",
            Self::Updated { .. } => "CannedResponseUpdated",
            Self::Deleted => "CannedResponseDeleted",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

/// The canned response aggregate's decider (state [`CannedState`]).
#[derive(Debug)]
pub enum CannedDecider {}

stamped_decider!(CannedDecider {
    state: CannedState,
    command: CannedCommand,
    event: CannedEvent,
    decide: decide,
    evolve: evolve,
});

fn decide(
    state: &CannedState,
    command: &CannedCommand,
) -> Result<Vec<CannedEvent>, ConfigRejection> {
    const OBJECT: &str = "canned response";
    if let CannedCommand::Create { id, scope, content } = command {
        check_absent(OBJECT, state.response.as_ref())?;
        content.validate()?;
        return Ok(vec![CannedEvent::Created {
            id: *id,
            scope: *scope,
            content: content.clone(),
        }]);
    }
    let response = live(OBJECT, state.response.as_ref(), state.deleted)?;
    Ok(match command {
        CannedCommand::Create { .. } => vec![],
        CannedCommand::Update { content } => {
            content.validate()?;
            if *content == response.content {
                vec![]
            } else {
                vec![CannedEvent::Updated {
                    content: content.clone(),
                }]
            }
        }
        CannedCommand::Delete => vec![CannedEvent::Deleted],
    })
}

fn evolve(state: &mut CannedState, event: &CannedEvent) {
    match event {
        CannedEvent::Created { id, scope, content } => {
            state.response = Some(CannedResponse {
                id: *id,
                scope: *scope,
                content: content.clone(),
            });
        }
        CannedEvent::Updated { content } => {
            if let Some(response) = state.response.as_mut() {
                response.content = content.clone();
            }
        }
        CannedEvent::Deleted => state.deleted = true,
    }
}

/// Every live canned response, for the `/shortcut` lookup (A4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CannedLibrary {
    responses: BTreeMap<CannedResponseId, CannedState>,
}

impl CannedLibrary {
    /// Folds one event of `id`'s stream.
    pub fn record(&mut self, id: CannedResponseId, event: &Stamped<CannedEvent>) {
        evolve(self.responses.entry(id).or_default(), &event.event);
    }

    /// The responses `agent` may use whose shortcut starts with what follows the `/` in
    /// `typed` (`"/gre"` finds `greeting`). The agent's personal ones come first, then team
    /// ones, each by shortcut; at most [`CANNED_LOOKUP_RESULTS_MAX`]. Text not starting with
    /// `/` finds nothing.
    pub fn lookup(&self, agent: AgentId, typed: &str) -> Vec<&CannedResponse> {
        let Some(prefix) = typed.strip_prefix('/') else {
            return Vec::new();
        };
        let prefix = prefix.to_lowercase();
        let mut found: Vec<&CannedResponse> = self
            .responses
            .values()
            .filter(|s| !s.deleted)
            .filter_map(|s| s.response.as_ref())
            .filter(|r| r.scope == CannedScope::Personal(agent) || r.scope == CannedScope::Team)
            .filter(|r| r.content.shortcut.starts_with(&prefix))
            .collect();
        found.sort_by(|a, b| {
            (a.scope == CannedScope::Team, &a.content.shortcut, a.id).cmp(&(
                b.scope == CannedScope::Team,
                &b.content.shortcut,
                b.id,
            ))
        });
        found.truncate(CANNED_LOOKUP_RESULTS_MAX);
        found
    }
}
