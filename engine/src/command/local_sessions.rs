//! The member's logical session cache, as `$listLocalSessions` reports it: every session id (`lsid.id`) a
//! command carried or `startSession` handed out, with the time it was last used; `endSessions` takes sessions
//! out. The engine has no users, so every session belongs to the unauthenticated user, whose `uid` is the
//! SHA-256 digest of the empty user name (as mongod computes it without authentication).

use std::collections::HashMap;
use std::sync::Mutex;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, doc};

/// SHA-256 of the empty string: the `uid` of sessions when no user is authenticated.
const UNAUTHENTICATED_UID: [u8; 32] = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Session ids (their UUID bytes) and when each was last used, in the order they were first seen.
#[derive(Default)]
pub struct LocalSessions {
    sessions: Mutex<HashMap<Vec<u8>, (u64, DateTime)>>,
}

impl LocalSessions {
    /// Records a use of the session `id` (`lsid.id`, a UUID) at `now`; ids of other types are not sessions.
    pub fn touch(&self, id: &Bson, now: DateTime) {
        let Some(bytes) = uuid_bytes(id) else {
            return;
        };
        let mut sessions = self.lock();
        let next = sessions.len() as u64;
        sessions
            .entry(bytes)
            .and_modify(|(_, used)| *used = now)
            .or_insert((next, now));
    }

    /// Takes the session `id` out of the cache (`endSessions`).
    pub fn end(&self, id: &Bson) {
        if let Some(bytes) = uuid_bytes(id) {
            self.lock().remove(&bytes);
        }
    }

    /// The `$listLocalSessions` documents: `{_id: {id, uid}, lastUse}`, oldest session first.
    pub fn list(&self) -> Vec<Document> {
        let mut sessions: Vec<(u64, Vec<u8>, DateTime)> = self
            .lock()
            .iter()
            .map(|(id, (order, used))| (*order, id.clone(), *used))
            .collect();
        sessions.sort_by_key(|(order, _, _)| *order);
        sessions
            .into_iter()
            .map(|(_, id, used)| {
                doc! {
                    "_id": {
                        "id": Binary { subtype: BinarySubtype::Uuid, bytes: id },
                        "uid": Binary { subtype: BinarySubtype::Generic, bytes: UNAUTHENTICATED_UID.to_vec() },
                    },
                    "lastUse": used,
                }
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, (u64, DateTime)>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn uuid_bytes(id: &Bson) -> Option<Vec<u8>> {
    match id {
        Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes,
        }) => Some(bytes.clone()),
        _ => None,
    }
}

/// Records the session a command runs in (`lsid`), and forgets the sessions `endSessions` names.
pub fn observe(sessions: &LocalSessions, name: &str, body: &Document, now: DateTime) {
    if let Some(id) = body.get_document("lsid").ok().and_then(|lsid| lsid.get("id")) {
        sessions.touch(id, now);
    }
    if name == "endSessions"
        && let Ok(ended) = body.get_array("endSessions")
    {
        for id in ended.iter().filter_map(|s| s.as_document()).filter_map(|s| s.get("id")) {
            sessions.end(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_in_first_use_order_until_ended() {
        let sessions = LocalSessions::default();
        let (a, b) = (Bson::from(bson::Uuid::new()), Bson::from(bson::Uuid::new()));
        let now = DateTime::now();
        observe(&sessions, "find", &doc! {"find": "c", "lsid": {"id": a.clone()}}, now);
        observe(&sessions, "find", &doc! {"find": "c", "lsid": {"id": b.clone()}}, now);
        observe(&sessions, "find", &doc! {"find": "c", "lsid": {"id": a.clone()}}, now);
        let listed: Vec<Bson> = sessions
            .list()
            .iter()
            .map(|d| d.get_document("_id").unwrap().get("id").unwrap().clone())
            .collect();
        assert_eq!(listed, vec![a.clone(), b.clone()]);
        observe(&sessions, "endSessions", &doc! {"endSessions": [{"id": a}]}, now);
        assert_eq!(sessions.list().len(), 1);
        let uid = sessions.list()[0]
            .get_document("_id")
            .unwrap()
            .get_binary_generic("uid")
            .unwrap()
            .clone();
        assert_eq!(uid.len(), 32);
    }
}
