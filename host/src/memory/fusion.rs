//! Reciprocal rank fusion: combines ranked lists by rank, not by score, so a
//! cosine similarity and a BM25 score never have to be made comparable.
//!
//! Each list contributes `1 / (K + rank)` (rank from 1) to a chunk's fused
//! score; chunks found by both searches rise to the top.

use std::collections::HashMap;

use uuid::Uuid;

use super::Ranked;

/// The RRF constant from Cormack, Clarke and Büttcher (2009).
pub const K: f32 = 60.0;

/// Fuses ranked lists (each best first) into one, best first; ties keep the
/// order in which chunks were first seen.
pub fn reciprocal_rank(lists: &[&[Ranked]], limit: usize) -> Vec<Ranked> {
    let mut fused: HashMap<Uuid, (f32, usize)> = HashMap::new();
    let mut seen = 0;
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let entry = fused.entry(hit.chunk_id).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            entry.0 += 1.0 / (K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(Uuid, f32, usize)> = fused
        .into_iter()
        .map(|(id, (score, first))| (id, score, first))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.truncate(limit);
    out.into_iter()
        .map(|(chunk_id, score, _)| Ranked { chunk_id, score })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[u128]) -> Vec<Ranked> {
        ids.iter()
            .map(|i| Ranked {
                chunk_id: Uuid::from_u128(*i),
                score: 0.0,
            })
            .collect()
    }

    #[test]
    fn a_chunk_found_by_both_searches_wins() {
        let vector = list(&[1, 2, 3]);
        let keyword = list(&[3, 4]);
        let fused = reciprocal_rank(&[&vector, &keyword], 10);
        let ids: Vec<u128> = fused.iter().map(|r| r.chunk_id.as_u128()).collect();
        assert_eq!(ids, vec![3, 1, 2, 4]);
        assert!((fused[0].score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn limit_and_empty_lists() {
        assert!(reciprocal_rank(&[&[], &[]], 5).is_empty());
        let fused = reciprocal_rank(&[&list(&[1, 2, 3])], 2);
        assert_eq!(fused.len(), 2);
        assert_eq!(fused[0].chunk_id.as_u128(), 1);
    }
}
