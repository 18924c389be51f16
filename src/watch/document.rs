//! The identity of an advisory document that is checked before it is believed (a CSAF
//! advisory today, an OSV record tomorrow): the one place its entry key and the
//! identities of its events are built.
//!
//! A document is identified by its publisher's id (for CSAF the publisher namespace
//! plus `tracking.id`), never by the URL it was found at; a new version of the same id
//! is an update. Event identities are derived from these, so the same document and
//! version always raise the same event id. Deciding what is new is `pass`'s job.

use crate::alert::event::{event_id, Event, Kind};
use crate::store::EntryWrite;

/// Who published a document, under which id, at which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentId {
    /// The format's short name (`csaf`).
    pub scheme: &'static str,
    /// The publisher's id for the document (`namespace#tracking-id` for CSAF).
    pub id: String,
    pub version: String,
}

impl DocumentId {
    /// The key of the entry that records the document.
    pub fn entry_key(&self) -> String {
        format!("adv:{}", self.id)
    }

    /// What an event of `kind` about this version is derived from.
    pub fn event_identity(&self, kind: Kind) -> String {
        match kind {
            Kind::AdvisoryUpdated => format!("{} {:?}", self.entry_key(), Some(&self.version)),
            _ => format!("{} {} {}", self.scheme, self.id, self.version),
        }
    }
}

/// A document that passed its checks: its identity, the entry that records it, and
/// the event it raises when it is new.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub doc: DocumentId,
    pub entry: EntryWrite,
    pub event: Event,
    /// What the document says about products, for matching against the inventory.
    pub claims: crate::watch::affects::Claims,
}

impl Advisory {
    /// Builds the entry for `doc`; `event` must be the `advisory-new` event built with
    /// `doc.event_identity(Kind::AdvisoryNew)`.
    pub fn new(doc: DocumentId, content_hash: String, title: String, event: Event) -> Advisory {
        let entry = EntryWrite {
            key: doc.entry_key(),
            content_hash,
            updated: Some(doc.version.clone()),
            title,
            url: event.url.clone(),
        };
        Advisory {
            doc,
            entry,
            event,
            claims: crate::watch::affects::Claims::default(),
        }
    }

    /// The event for a new version of a document seen before, or the same version
    /// changed in place: its id names the content's hash, so each change is an event.
    pub fn updated_event(&self) -> Event {
        let mut e = self.event.clone();
        e.kind = Kind::AdvisoryUpdated;
        e.id = event_id(
            Kind::AdvisoryUpdated,
            &e.vendor,
            &format!(
                "{} {}",
                self.doc.event_identity(Kind::AdvisoryUpdated),
                self.entry.content_hash
            ),
        );
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_stable() {
        let doc = DocumentId {
            scheme: "csaf",
            id: "https://acme.example#ACME-2024-1".into(),
            version: "2".into(),
        };
        assert_eq!(doc.entry_key(), "adv:https://acme.example#ACME-2024-1");
        assert_eq!(
            doc.event_identity(Kind::AdvisoryNew),
            "csaf https://acme.example#ACME-2024-1 2"
        );
        assert_eq!(
            doc.event_identity(Kind::AdvisoryUpdated),
            "adv:https://acme.example#ACME-2024-1 Some(\"2\")"
        );
    }
}
