//! Sealed values: parts of a payload encrypted under a key from a [`KeyVault`], so that
//! destroying the key erases them from every copy of the log (crypto-shredding, X4).
//!
//! # How a value is sealed
//!
//! A payload is MessagePack. A [`SealPolicy`] (the application's: it knows which fields hold
//! personal content) replaces a value of the payload by a **seal mark** ([`mark`]): a MessagePack
//! extension value of type [`SEAL_EXT_TYPE`] holding the key id, the key's owner, a public
//! *placeholder* (what readers get once the key is gone, e.g. an empty message body) and the value
//! itself. [`SealedStore`] wraps any [`EventStore`]: on append it applies the policy, fetches or
//! creates the keys in one vault call, and encrypts every mark's value with XChaCha20-Poly1305
//! before the inner store sees the bytes. So the plaintext never reaches the inner store, its
//! files, or its hash chain, which covers the ciphertext.
//!
//! On read, [`SealedStore`] puts each value back in place (decrypted), or its placeholder when the
//! key is gone. A reader of the inner store without keys (an audit dump of the raw log, a codec
//! fallback) uses [`strip`], which puts the placeholders in.
//!
//! # Determinism
//!
//! The nonce is synthetic: the first 24 bytes of HMAC-SHA256(key, key id ‖ placeholder ‖
//! plaintext), as in SIV. The same value sealed twice under the same key gives the same bytes, so
//! an exact retry of an append stays byte-identical and the store's idempotency (C9) holds; two
//! different values never share a nonce except by a SHA-256 collision. What it reveals: that two
//! sealed values under the same key are equal.

use crate::error::StoreError;
use crate::store::{AppendOutcome, EventStore};
use crate::types::{GlobalPosition, RecordedEvent, StreamAppend, StreamId, StreamVersion};
use crate::vault::{KeyVault, SecretKey, VAULT_KEYS_PER_CALL_MAX};
use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rmpv::Value;
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// The MessagePack extension type of a seal mark (ASCII `S`).
pub const SEAL_EXT_TYPE: i8 = 0x53;

/// Most seal marks in one event's payload; bounds the work of sealing and opening one event.
pub const SEALS_PER_EVENT_MAX: usize = 1_000;

const STATE_PLAIN: u64 = 0;
const STATE_SEALED: u64 = 1;
const NONCE_BYTES: usize = 24;

/// Which values of an event are sealed, under which key: the application's rules.
pub trait SealPolicy: Send + Sync + 'static {
    /// Whether events of this type in this stream may hold values to seal (a cheap filter: the
    /// payload is only parsed when it says yes).
    fn applies(&self, stream: &StreamId, event_type: &str) -> bool;

    /// Replaces the values to seal in `payload` by [`mark`]s. An error refuses the append.
    fn mark(&self, stream: &StreamId, event_type: &str, payload: &mut Value) -> Result<(), String>;
}

/// The key a seal mark uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealKey {
    /// The key's id in the vault (derived by the policy from what it protects).
    pub key_id: Uuid,
    /// The key's owner, for erasure of a whole group (`None`: erased only by its id).
    pub owner: Option<Uuid>,
}

/// A seal mark for `value` under `key`; readers get `placeholder` once the key is destroyed.
pub fn mark(key: SealKey, placeholder: &Value, value: &Value) -> Result<Value, String> {
    let body = to_bytes(value)?;
    let placeholder = to_bytes(placeholder)?;
    encode_mark(&Mark {
        state: STATE_PLAIN,
        key,
        placeholder,
        nonce: Vec::new(),
        body,
    })
}

struct Mark {
    state: u64,
    key: SealKey,
    placeholder: Vec<u8>,
    nonce: Vec<u8>,
    body: Vec<u8>,
}

fn to_bytes(value: &Value) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn from_bytes(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = bytes;
    let value = rmpv::decode::read_value(&mut reader).map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} bytes after the value", reader.len()));
    }
    Ok(value)
}

fn encode_mark(mark: &Mark) -> Result<Value, String> {
    let owner = mark
        .key
        .owner
        .map_or(Value::Nil, |o| Value::Binary(o.as_bytes().to_vec()));
    let fields = Value::Array(vec![
        Value::from(mark.state),
        Value::Binary(mark.key.key_id.as_bytes().to_vec()),
        owner,
        Value::Binary(mark.placeholder.clone()),
        Value::Binary(mark.nonce.clone()),
        Value::Binary(mark.body.clone()),
    ]);
    Ok(Value::Ext(SEAL_EXT_TYPE, to_bytes(&fields)?))
}

fn decode_mark(data: &[u8]) -> Result<Mark, String> {
    let Value::Array(fields) = from_bytes(data)? else {
        return Err("a seal mark is not an array".into());
    };
    let [state, key_id, owner, placeholder, nonce, body] = <[Value; 6]>::try_from(fields)
        .map_err(|f| format!("a seal mark has {} fields", f.len()))?;
    let uuid = |v: &Value| -> Result<Uuid, String> {
        match v {
            Value::Binary(b) => Uuid::from_slice(b).map_err(|e| e.to_string()),
            _ => Err("a seal mark's id is not binary".into()),
        }
    };
    let binary = |v: Value| -> Result<Vec<u8>, String> {
        match v {
            Value::Binary(b) => Ok(b),
            _ => Err("a seal mark's field is not binary".into()),
        }
    };
    Ok(Mark {
        state: state
            .as_u64()
            .ok_or("a seal mark's state is not a number")?,
        key: SealKey {
            key_id: uuid(&key_id)?,
            owner: if owner.is_nil() {
                None
            } else {
                Some(uuid(&owner)?)
            },
        },
        placeholder: binary(placeholder)?,
        nonce: binary(nonce)?,
        body: binary(body)?,
    })
}

/// Whether `payload` may hold a seal mark (an ext 8/16/32 header with our type). False positives
/// only cost a parse; there are no false negatives (a mark is always longer than a fixext).
pub fn may_hold_seals(payload: &[u8]) -> bool {
    let ty = SEAL_EXT_TYPE as u8;
    payload.iter().enumerate().any(|(i, b)| {
        let at = |offset: usize| payload.get(i + offset) == Some(&ty);
        match b {
            0xc7 => at(2),
            0xc8 => at(3),
            0xc9 => at(5),
            _ => false,
        }
    })
}

/// What [`walk`] calls for each seal mark's data: `Some(value)` replaces the mark.
type Visit<'a> = dyn FnMut(&[u8]) -> Result<Option<Value>, String> + 'a;

/// Visits every seal mark of `value` (depth first), letting `f` replace it.
fn walk(value: &mut Value, count: &mut usize, f: &mut Visit<'_>) -> Result<(), String> {
    match value {
        Value::Ext(ty, data) if *ty == SEAL_EXT_TYPE => {
            *count += 1;
            if *count > SEALS_PER_EVENT_MAX {
                return Err(format!(
                    "more than SEALS_PER_EVENT_MAX ({SEALS_PER_EVENT_MAX}) seal marks"
                ));
            }
            if let Some(replacement) = f(data)? {
                *value = replacement;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| walk(v, count, f)),
        Value::Map(entries) => entries.iter_mut().try_for_each(|(k, v)| {
            walk(k, count, f)?;
            walk(v, count, f)
        }),
        _ => Ok(()),
    }
}

fn nonce_for(key: &SecretKey, mark: &Mark) -> [u8; NONCE_BYTES] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(b"chat-store/seal-nonce/1");
    mac.update(mark.key.key_id.as_bytes());
    mac.update(&(mark.placeholder.len() as u64).to_be_bytes());
    mac.update(&mark.placeholder);
    mac.update(&mark.body);
    let tag = mac.finalize().into_bytes();
    let mut nonce = [0u8; NONCE_BYTES];
    nonce.copy_from_slice(&tag[..NONCE_BYTES]);
    nonce
}

/// What the AEAD authenticates besides the body: the key id and the placeholder, so neither can
/// be swapped without the decryption failing.
fn aad(mark: &Mark) -> Vec<u8> {
    let mut aad = mark.key.key_id.as_bytes().to_vec();
    aad.extend_from_slice(&mark.placeholder);
    aad
}

fn seal_error(what: String) -> StoreError {
    StoreError::InvalidRequest(format!("cannot seal: {what}"))
}

fn open_error(record: &RecordedEvent, what: String) -> StoreError {
    StoreError::Decode {
        event_type: record.event_type.clone(),
        schema_version: record.schema_version,
        reason: format!(
            "sealed value at position {}: {what}",
            record.global_position
        ),
    }
}

/// The payload with every seal mark replaced by its placeholder (sealed marks) or its value
/// (plain marks): what a reader without keys may see. `None` when there is no mark.
pub fn strip(payload: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if !may_hold_seals(payload) {
        return Ok(None);
    }
    let mut value = from_bytes(payload)?;
    let mut count = 0;
    walk(&mut value, &mut count, &mut |data| {
        let mark = decode_mark(data)?;
        let shown = if mark.state == STATE_PLAIN {
            &mark.body
        } else {
            &mark.placeholder
        };
        Ok(Some(from_bytes(shown)?))
    })?;
    if count == 0 {
        return Ok(None);
    }
    Ok(Some(to_bytes(&value)?))
}

/// The seal marks' keys of a payload, without opening anything (for audits).
pub fn sealed_keys(payload: &[u8]) -> Result<Vec<SealKey>, String> {
    let mut keys = Vec::new();
    if !may_hold_seals(payload) {
        return Ok(keys);
    }
    let mut value = from_bytes(payload)?;
    let mut count = 0;
    walk(&mut value, &mut count, &mut |data| {
        keys.push(decode_mark(data)?.key);
        Ok(None)
    })?;
    Ok(keys)
}

/// An [`EventStore`] that seals on append and opens on read; see the module documentation.
pub struct SealedStore {
    inner: Arc<dyn EventStore>,
    vault: Arc<dyn KeyVault>,
    policy: Arc<dyn SealPolicy>,
}

impl std::fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedStore").finish_non_exhaustive()
    }
}

impl SealedStore {
    /// Wraps `inner`, sealing what `policy` marks with keys from `vault`.
    pub fn new(
        inner: Arc<dyn EventStore>,
        vault: Arc<dyn KeyVault>,
        policy: Arc<dyn SealPolicy>,
    ) -> Self {
        Self {
            inner,
            vault,
            policy,
        }
    }

    /// The store as written (ciphertext), e.g. for [`crate::verify`].
    pub fn inner(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }

    /// The vault.
    pub fn vault(&self) -> &Arc<dyn KeyVault> {
        &self.vault
    }

    async fn seal(&self, appends: &mut [StreamAppend]) -> Result<(), StoreError> {
        let mut parsed: Vec<(usize, usize, Value)> = Vec::new();
        let mut wanted: BTreeMap<Uuid, Option<Uuid>> = BTreeMap::new();
        for (a, append) in appends.iter().enumerate() {
            for (e, event) in append.events.iter().enumerate() {
                let applies = self.policy.applies(&append.stream_id, &event.event_type);
                if !applies && !may_hold_seals(&event.payload) {
                    continue;
                }
                let mut value = from_bytes(&event.payload).map_err(seal_error)?;
                if applies {
                    self.policy
                        .mark(&append.stream_id, &event.event_type, &mut value)
                        .map_err(seal_error)?;
                }
                let mut count = 0;
                walk(&mut value, &mut count, &mut |data| {
                    let mark = decode_mark(data)?;
                    if mark.state == STATE_PLAIN {
                        wanted.entry(mark.key.key_id).or_insert(mark.key.owner);
                    }
                    Ok(None)
                })
                .map_err(seal_error)?;
                if count > 0 {
                    parsed.push((a, e, value));
                }
            }
        }
        if wanted.len() > VAULT_KEYS_PER_CALL_MAX {
            return Err(StoreError::LimitExceeded {
                limit: "VAULT_KEYS_PER_CALL_MAX",
                max: VAULT_KEYS_PER_CALL_MAX,
                actual: wanted.len(),
            });
        }
        if parsed.is_empty() {
            return Ok(());
        }
        let requests: Vec<(Uuid, Option<Uuid>)> = wanted.into_iter().collect();
        let keys = self.vault.get_or_create(&requests).await?;
        for (a, e, mut value) in parsed {
            let mut count = 0;
            walk(&mut value, &mut count, &mut |data| {
                let mut mark = decode_mark(data)?;
                if mark.state != STATE_PLAIN {
                    return Ok(None);
                }
                let key = keys
                    .get(&mark.key.key_id)
                    .ok_or_else(|| format!("no key {}", mark.key.key_id))?;
                let nonce = nonce_for(key, &mark);
                let cipher = XChaCha20Poly1305::new(key.into());
                let aad = aad(&mark);
                let sealed = cipher
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: &mark.body,
                            aad: &aad,
                        },
                    )
                    .map_err(|e| format!("encryption failed: {e}"))?;
                mark.state = STATE_SEALED;
                mark.nonce = nonce.to_vec();
                mark.body = sealed;
                Ok(Some(encode_mark(&mark)?))
            })
            .map_err(seal_error)?;
            appends[a].events[e].payload = to_bytes(&value).map_err(seal_error)?;
        }
        Ok(())
    }

    /// Opens every sealed value of `records` in place (one vault call for the whole page).
    pub async fn open(&self, records: &mut [RecordedEvent]) -> Result<(), StoreError> {
        let mut parsed: Vec<(usize, Value)> = Vec::new();
        let mut wanted = BTreeSet::new();
        for (i, record) in records.iter().enumerate() {
            if !may_hold_seals(&record.payload) {
                continue;
            }
            let mut value = from_bytes(&record.payload).map_err(|e| open_error(record, e))?;
            let mut count = 0;
            walk(&mut value, &mut count, &mut |data| {
                wanted.insert(decode_mark(data)?.key.key_id);
                Ok(None)
            })
            .map_err(|e| open_error(record, e))?;
            if count > 0 {
                parsed.push((i, value));
            }
        }
        if parsed.is_empty() {
            return Ok(());
        }
        let wanted: Vec<Uuid> = wanted.into_iter().collect();
        let mut keys = BTreeMap::new();
        for chunk in wanted.chunks(VAULT_KEYS_PER_CALL_MAX) {
            keys.extend(self.vault.keys(chunk).await?);
        }
        for (i, mut value) in parsed {
            let record = &records[i];
            let mut count = 0;
            walk(&mut value, &mut count, &mut |data| {
                let mark = decode_mark(data)?;
                if mark.state == STATE_PLAIN {
                    return Ok(Some(from_bytes(&mark.body)?));
                }
                let Some(key) = keys.get(&mark.key.key_id) else {
                    return Ok(Some(from_bytes(&mark.placeholder)?));
                };
                let cipher = XChaCha20Poly1305::new(key.into());
                let plain = cipher
                    .decrypt(
                        XNonce::from_slice(&mark.nonce),
                        Payload {
                            msg: &mark.body,
                            aad: &aad(&mark),
                        },
                    )
                    .map_err(|_| {
                        format!(
                            "key {} does not open the value (altered ciphertext or wrong key)",
                            mark.key.key_id
                        )
                    })?;
                Ok(Some(from_bytes(&plain)?))
            })
            .map_err(|e| open_error(record, e))?;
            records[i].payload = to_bytes(&value).map_err(|e| open_error(record, e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for SealedStore {
    async fn append_multi(&self, mut appends: Vec<StreamAppend>) -> AppendOutcome {
        crate::plan::validate_appends(&appends)?;
        self.seal(&mut appends).await?;
        self.inner.append_multi(appends).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut records = self
            .inner
            .read_stream(stream_id, from_version, max_count)
            .await?;
        self.open(&mut records).await?;
        Ok(records)
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut records = self.inner.read_all(from_position, max_count).await?;
        self.open(&mut records).await?;
        Ok(records)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }

    fn subscribe(&self) -> watch::Receiver<GlobalPosition> {
        self.inner.subscribe()
    }

    fn key_vault(&self) -> Option<Arc<dyn KeyVault>> {
        Some(self.vault.clone())
    }

    fn is_sealing(&self) -> bool {
        true
    }
}
