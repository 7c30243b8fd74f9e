//! The embedder reproduces sentence-transformers' all-MiniLM-L6-v2 vectors.

use medmemory::ml::{DIM, Embedder};
use medmemory_tests::{fixtures_dir, in_ci, models_dir};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_the_reference_embeddings() {
    let embedder = match Embedder::load(&models_dir()) {
        Ok(e) => e,
        Err(e) if !in_ci() => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("CI must fetch the model weights: {e}"),
    };
    let sentences = std::fs::read_to_string(fixtures_dir().join("minilm-sentences.txt"))
        .expect("fixture sentences");
    let references = std::fs::read_to_string(fixtures_dir().join("minilm-reference.jsonl"))
        .expect("fixture vectors");
    let sentences: Vec<&str> = sentences.lines().filter(|l| !l.is_empty()).collect();
    let references: Vec<Vec<f32>> = references
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("jsonl");
            let arr = v.get("embedding").unwrap_or(&v);
            arr.as_array()
                .expect("array")
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    assert_eq!(sentences.len(), references.len());
    assert_eq!(sentences.len(), 10);

    // One batch (with padding) and one at a time must both match.
    let batched = embedder.embed(&sentences).expect("embed");
    for (i, (sentence, reference)) in sentences.iter().zip(&references).enumerate() {
        assert_eq!(reference.len(), DIM);
        let single = embedder.embed(&[sentence]).expect("embed").remove(0);
        let c_batch = cosine(&batched[i], reference);
        let c_single = cosine(&single, reference);
        assert!(
            c_batch >= 0.9999 && c_single >= 0.9999,
            "line {}: cosine {c_batch} / {c_single}",
            i + 1
        );
        let norm: f32 = single.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
}
