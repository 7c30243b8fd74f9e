//! Picking the next token from logits: greedy (temperature 0) or seeded
//! temperature and nucleus (top-p) sampling, reproducible for a given seed.

/// How to pick tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// 0 picks the most likely token every time.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probabilities sum to `top_p`.
    pub top_p: f32,
    pub seed: u64,
}

impl Sampling {
    /// The most likely token, always.
    pub const GREEDY: Sampling = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };

    pub(crate) fn sampler(self) -> Sampler {
        Sampler {
            sampling: self,
            state: self.seed ^ 0x9e37_79b9_7f4a_7c15,
        }
    }
}

pub(crate) struct Sampler {
    sampling: Sampling,
    state: u64,
}

impl Sampler {
    /// splitmix64, mapped to [0, 1).
    fn uniform(&mut self) -> f32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }

    pub(crate) fn pick(&mut self, logits: &[f32]) -> u32 {
        let greedy = || {
            logits
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &l)| {
                    if l > best.1 { (i, l) } else { best }
                })
                .0 as u32
        };
        let Sampling {
            temperature, top_p, ..
        } = self.sampling;
        if temperature.is_nan() || temperature <= 0.0 || logits.is_empty() {
            return greedy();
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, ((l - max) / temperature).exp()))
            .collect();
        let total: f32 = probs.iter().map(|p| p.1).sum();
        probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let keep = top_p.clamp(0.0, 1.0) * total;
        let mut mass = 0.0;
        let mut cut = probs.len();
        for (i, p) in probs.iter().enumerate() {
            mass += p.1;
            if mass >= keep {
                cut = i + 1;
                break;
            }
        }
        probs.truncate(cut.max(1));
        let mut target = self.uniform() * probs.iter().map(|p| p.1).sum::<f32>();
        for &(id, p) in &probs {
            if target < p {
                return id;
            }
            target -= p;
        }
        probs[probs.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_maximum_and_sampling_is_seeded() {
        let logits = [0.1, 3.0, 2.9, -1.0];
        assert_eq!(Sampling::GREEDY.sampler().pick(&logits), 1);
        let warm = Sampling {
            temperature: 1.0,
            top_p: 0.95,
            seed: 7,
        };
        let run = |s: Sampling| {
            let mut sampler = s.sampler();
            (0..64).map(|_| sampler.pick(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(warm), run(warm));
        let picks = run(warm);
        assert!(picks.contains(&1) && picks.contains(&2));
        // top-p keeps only the two likely tokens.
        assert!(!picks.contains(&3));
        // A tiny top-p is greedy.
        let narrow = Sampling {
            top_p: 0.01,
            ..warm
        };
        assert!(run(narrow).iter().all(|&id| id == 1));
    }
}
