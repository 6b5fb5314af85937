//! The memo of verified tokens: a token seen before skips only its signature computation.
//!
//! - Keyed by the SHA-256 digest of the whole token text (collision resistant; the memo never
//!   holds token text).
//! - Bounded by entries and bytes ([`MemoLimits`]); S3-FIFO eviction drops the least useful
//!   entries one by one (`quick_cache`), never the whole memo at once.
//! - Only tokens whose signature verified are stored. An entry goes when its token expires (on
//!   its next sight), when the key that verified it is no longer the one the key source returns
//!   for its `kid`, or under memory pressure.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::keys::VerificationKey;
use crate::claims::Claims;

/// Bounds of a [`Verifier`](super::Verifier)'s memo of verified tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoLimits {
    /// Most tokens remembered.
    pub max_entries: usize,
    /// Most bytes the remembered entries take (estimated: claims, key id and bookkeeping).
    pub max_bytes: u64,
}

impl Default for MemoLimits {
    /// 65,536 tokens and 16 MiB: tens of thousands of active users (a Google ID token lives an
    /// hour, so one per user at a time) in a few MiB each way.
    fn default() -> Self {
        Self {
            max_entries: 65_536,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl MemoLimits {
    /// No memo: every token is verified in full every time.
    pub const OFF: Self = Self {
        max_entries: 0,
        max_bytes: 0,
    };
}

/// A remembered token: its claims and the key (published under `kid`) that verified it.
pub(crate) struct Entry {
    pub claims: Arc<Claims>,
    pub kid: Arc<str>,
    pub key: Arc<VerificationKey>,
    weight: u64,
}

impl Entry {
    pub fn new(claims: Arc<Claims>, kid: &str, key: Arc<VerificationKey>, floor: u64) -> Self {
        let c = &claims;
        let text = c.iss.len()
            + c.aud.len()
            + c.sub.len()
            + c.azp.as_ref().map_or(0, String::len)
            + c.email.as_ref().map_or(0, String::len)
            + c.hd.as_ref().map_or(0, String::len)
            + kid.len();
        // The entry, the claims allocation, the strings, and the cache's own slot.
        let bytes =
            (std::mem::size_of::<Self>() + std::mem::size_of::<Claims>() + text + 96) as u64;
        Self {
            claims,
            kid: kid.into(),
            key,
            weight: bytes.max(floor),
        }
    }
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<[u8; 32], Arc<Entry>> for Weight {
    fn weight(&self, _: &[u8; 32], entry: &Arc<Entry>) -> u64 {
        entry.weight
    }
}

type Cache = quick_cache::sync::Cache<[u8; 32], Arc<Entry>, Weight, foldhash::fast::RandomState>;

/// The memo (see the module docs).
pub(crate) struct Memo {
    cache: Option<Cache>,
    /// Least weight of an entry: bounds the entry count by the byte budget.
    floor: u64,
}

impl Memo {
    pub fn new(limits: MemoLimits) -> Self {
        if limits.max_entries == 0 || limits.max_bytes == 0 {
            return Self {
                cache: None,
                floor: 1,
            };
        }
        let floor = (limits.max_bytes / limits.max_entries as u64).max(1);
        Self {
            cache: Some(Cache::with(
                limits.max_entries,
                limits.max_bytes,
                Weight,
                foldhash::fast::RandomState::default(),
                Default::default(),
            )),
            floor,
        }
    }

    /// The digest a token is remembered under.
    pub fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    pub fn get(&self, digest: &[u8; 32]) -> Option<Arc<Entry>> {
        self.cache.as_ref()?.get(digest)
    }

    pub fn insert(
        &self,
        digest: [u8; 32],
        claims: Arc<Claims>,
        kid: &str,
        key: Arc<VerificationKey>,
    ) {
        if let Some(cache) = &self.cache {
            cache.insert(digest, Arc::new(Entry::new(claims, kid, key, self.floor)));
        }
    }

    pub fn remove(&self, digest: &[u8; 32]) {
        if let Some(cache) = &self.cache {
            cache.remove(digest);
        }
    }

    /// Tokens remembered now.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }
}
