//! What the last export read, so the next reads only what moved. A fingerprint per table
//! (rows, and the sum and latest of `updated_at`: an insert, an update or a delete moves
//! it, and it is read in the export's own snapshot, so a transaction still open at the last
//! export is seen when it commits) decides, per part of the vault, whether its rows must be
//! read again. The light rows of ideas, opportunities and memories are kept in
//! `.agentbus-vault.cache.json` next to the manifest; a missing, foreign or damaged cache
//! only means a full read.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The cache's file name, at the root of the vault.
pub const CACHE: &str = ".agentbus-vault.cache.json";

/// Light rows: what names a note and decides whether it must be rendered again
/// (`md5` of the whole row), without decoding the row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Light {
    pub id: String,
    pub date: String,
    pub title: String,
    pub agent: String,
    pub links: Vec<Option<String>>,
    pub md5: String,
}

/// Per table, `rows:sum:latest` of the namespace.
pub type Fingerprints = BTreeMap<String, String>;

/// Jobs' attempts are not fingerprinted: an attempt changes in the transaction that changes
/// its job (claim, close, expiry), which moves the jobs' fingerprint.
const FINGERPRINTS: &str = "select jsonb_build_object(
   'ideas', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from ideas where namespace = $1),
   'opportunities', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from opportunities where namespace = $1),
   'opportunity_reviews', (select count(*) || ':' || coalesce(max(r.id)::text, '') from opportunity_reviews r join opportunities o on o.id = r.opportunity_id where o.namespace = $1),
   'memories', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from memories where namespace = $1),
   'jobs', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from jobs where namespace = $1),
   'standing_order_runs', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from standing_order_runs where namespace = $1),
   'standing_orders', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from standing_orders where namespace = $1),
   'agents', (select count(*) || ':' || coalesce(sum(updated_at - timestamptz 'epoch')::text, '') || ':' || coalesce(max(updated_at)::text, '') from agents where namespace = $1))";

/// The fingerprints of `namespace`, read in the caller's transaction.
pub fn fingerprints(
    client: &mut impl postgres::GenericClient,
    namespace: &str,
) -> Result<Fingerprints> {
    let doc: serde_json::Value = client.query_one(FINGERPRINTS, &[&namespace])?.try_get(0)?;
    Ok(doc
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect())
}

/// What one export read: the fingerprints it saw and the light rows of the big tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cache {
    /// The renderer and the options the vault was made with; another means no reuse.
    pub made_by: String,
    pub sources: Fingerprints,
    pub ideas: Vec<Light>,
    pub opportunities: Vec<Light>,
    pub memories: Vec<Light>,
}

impl Cache {
    /// Whether every table of `tables` has the fingerprint `now` gives it.
    pub fn unchanged(&self, now: &Fingerprints, tables: &[&str]) -> bool {
        tables.iter().all(|t| {
            let recorded = self.sources.get(*t);
            recorded.is_some() && recorded == now.get(*t)
        })
    }
}

/// The cache of `dir` when it was made by `made_by` (empty otherwise).
pub fn load(dir: &Path, made_by: &str) -> Cache {
    std::fs::read(dir.join(CACHE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Cache>(&bytes).ok())
        .filter(|c| c.made_by == made_by)
        .unwrap_or_default()
}

/// Writes the cache (atomically), after the vault it describes is on disk.
pub fn save(dir: &Path, cache: &Cache) -> Result<()> {
    let bytes = serde_json::to_vec(cache).unwrap_or_default();
    super::files::write_atomically(&dir.join(CACHE), &bytes)
}

/// The owned files of a part of the vault (`part` says which) when every one is still as
/// the manifest recorded it (present, with its size): a part whose rows did not move keeps
/// them all.
pub fn intact(
    dir: &Path,
    before: &BTreeMap<String, super::files::Known>,
    part: impl Fn(&str) -> bool,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for (rel, known) in before {
        if !part(rel) {
            continue;
        }
        let (_, len, _) = known.as_ref()?;
        let ok = std::fs::metadata(dir.join(rel)).is_ok_and(|m| m.is_file() && m.len() == *len);
        if !ok {
            return None;
        }
        out.push(rel.clone());
    }
    Some(out)
}
