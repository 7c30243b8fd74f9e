//! A Llama-architecture decoder on burn tensors, loaded from GGUF: token
//! embedding (tied to the output), pre-norm blocks of grouped-query attention
//! with rotary positions and a SwiGLU feed-forward, RMS norms, and a KV cache.
//!
//! GGUF stores q/k weights permuted for llama.cpp's rotary layout, which
//! rotates adjacent pairs `(2i, 2i + 1)`; this decoder rotates the same pairs,
//! so the weights are used as they are. Weights are dequantised to `f32` at
//! load and laid out `[in, out]`; the q, k and v projections are fused into
//! one matrix, and so are the gate and up projections.

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData, activation, module};

use crate::ModelError;
use crate::gguf::Gguf;

/// The shape of the model, read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub layers: usize,
    pub dim: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub context: usize,
    pub rope_base: f32,
    pub eps: f64,
}

impl Config {
    fn from_gguf(g: &Gguf) -> Result<Config, ModelError> {
        let arch = g.str("general.architecture")?;
        if arch != "llama" {
            return Err(ModelError::Weights(format!(
                "architecture {arch} is not llama"
            )));
        }
        let key = |k: &str| format!("llama.{k}");
        let dim = g.usize(&key("embedding_length"))?;
        let heads = g.usize(&key("attention.head_count"))?;
        let kv_heads = g.usize(&key("attention.head_count_kv")).unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || dim % heads != 0 || heads % kv_heads != 0 {
            return Err(ModelError::Weights("inconsistent head counts".into()));
        }
        let head_dim = dim / heads;
        if g.usize(&key("rope.dimension_count")).unwrap_or(head_dim) != head_dim {
            return Err(ModelError::Weights(
                "partial rotary is not supported".into(),
            ));
        }
        Ok(Config {
            layers: g.usize(&key("block_count"))?,
            dim,
            heads,
            kv_heads,
            head_dim,
            ffn: g.usize(&key("feed_forward_length"))?,
            vocab: g.array("tokenizer.ggml.tokens")?.len(),
            context: g.usize(&key("context_length"))?,
            rope_base: g.f64(&key("rope.freq_base")).unwrap_or(10_000.0) as f32,
            eps: g.f64(&key("attention.layer_norm_rms_epsilon"))?,
        })
    }

    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Block {
    attn_norm: Tensor<2>,
    /// `[dim, dim + 2 * kv_dim]`: q, k and v side by side.
    qkv: Tensor<2>,
    /// `[dim, dim]`
    out: Tensor<2>,
    ffn_norm: Tensor<2>,
    /// `[dim, 2 * ffn]`: gate, then up.
    gate_up: Tensor<2>,
    /// `[ffn, dim]`
    down: Tensor<2>,
}

/// The keys and values of every position seen so far, per layer.
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The loaded decoder.
pub struct Llama {
    pub config: Config,
    device: Device,
    /// `[vocab, dim]`, also the output projection (tied).
    embedding: Tensor<2>,
    /// `[dim, vocab]`: the embedding transposed once, contiguous.
    output: Tensor<2>,
    norm: Tensor<2>,
    blocks: Vec<Block>,
    /// `[context, head_dim / 2]` rotary tables.
    cos: Tensor<2>,
    sin: Tensor<2>,
}

/// `[out, in]` row-major (ggml's layout) to `[in, out]`, appended column-wise
/// after `columns_before` columns of a matrix `total` columns wide.
fn transpose_into(
    dst: &mut [f32],
    src: &[f32],
    inputs: usize,
    outputs: usize,
    total: usize,
    at: usize,
) {
    for (o, row) in src.chunks_exact(inputs).enumerate().take(outputs) {
        for (i, &value) in row.iter().enumerate() {
            dst[i * total + at + o] = value;
        }
    }
}

impl Llama {
    /// Builds the decoder from a parsed GGUF file.
    pub fn from_gguf(g: &Gguf) -> Result<Llama, ModelError> {
        let config = Config::from_gguf(g)?;
        let device = Device::flex();
        let c = &config;
        let tensor2 = |values: Vec<f32>, shape: [usize; 2]| -> Tensor<2> {
            Tensor::from_data(TensorData::new(values, shape), &device)
        };
        let vector = |name: &str| -> Result<Tensor<2>, ModelError> {
            Ok(tensor2(g.f32(name, &[c.dim])?, [1, c.dim]))
        };
        // Several `[out, in]` matrices side by side as one `[in, sum(out)]`.
        let fused = |parts: &[(&str, usize)], inputs: usize| -> Result<Tensor<2>, ModelError> {
            let total: usize = parts.iter().map(|p| p.1).sum();
            let mut values = vec![0f32; inputs * total];
            let mut at = 0;
            for &(name, outputs) in parts {
                let src = g.f32(name, &[inputs, outputs])?;
                transpose_into(&mut values, &src, inputs, outputs, total, at);
                at += outputs;
            }
            Ok(tensor2(values, [inputs, total]))
        };
        let mut blocks = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            blocks.push(Block {
                attn_norm: vector(&name("attn_norm"))?,
                qkv: fused(
                    &[
                        (&name("attn_q"), c.dim),
                        (&name("attn_k"), c.kv_dim()),
                        (&name("attn_v"), c.kv_dim()),
                    ],
                    c.dim,
                )?,
                out: fused(&[(&name("attn_output"), c.dim)], c.dim)?,
                ffn_norm: vector(&name("ffn_norm"))?,
                gate_up: fused(
                    &[(&name("ffn_gate"), c.ffn), (&name("ffn_up"), c.ffn)],
                    c.dim,
                )?,
                down: fused(&[(&name("ffn_down"), c.dim)], c.ffn)?,
            });
        }
        let embedding_values = g.f32("token_embd.weight", &[c.dim, c.vocab])?;
        let output = if g.tensor("output.weight").is_ok() {
            fused(&[("output.weight", c.vocab)], c.dim)?
        } else {
            let mut values = vec![0f32; c.dim * c.vocab];
            transpose_into(&mut values, &embedding_values, c.dim, c.vocab, c.vocab, 0);
            tensor2(values, [c.dim, c.vocab])
        };
        let (cos, sin) = rotary_tables(c);
        Ok(Llama {
            embedding: tensor2(embedding_values, [c.vocab, c.dim]),
            output,
            norm: vector("output_norm.weight")?,
            blocks,
            cos: tensor2(cos, [c.context, c.head_dim / 2]),
            sin: tensor2(sin, [c.context, c.head_dim / 2]),
            device,
            config,
        })
    }

    /// An empty cache for one sequence.
    pub fn cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.config.layers).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Runs `ids` (the tokens after those already in `cache`) through the
    /// model, extends the cache, and returns the logits of the last token.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, ModelError> {
        let c = &self.config;
        let t = ids.len();
        let start = cache.len;
        if t == 0 || start + t > c.context {
            return Err(ModelError::Weights(format!(
                "{} tokens do not fit the context of {}",
                start + t,
                c.context
            )));
        }
        let ids: Vec<i64> = ids.iter().map(|&id| id as i64).collect();
        let ids: Tensor<1, Int> = Tensor::from_data(TensorData::new(ids, [t]), &self.device);
        let mut x = self.embedding.clone().select(0, ids);
        let half = c.head_dim / 2;
        let cos = self.cos.clone().slice([start..start + t, 0..half]);
        let sin = self.sin.clone().slice([start..start + t, 0..half]);
        let cos = cos.reshape([t, 1, half, 1]);
        let sin = sin.reshape([t, 1, half, 1]);
        for (block, slot) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, c, &cos, &sin, slot);
        }
        cache.len += t;
        let last = x.slice([t - 1..t, 0..c.dim]);
        let logits = rms_norm(last, &self.norm, c.eps).matmul(self.output.clone());
        logits
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| ModelError::Weights(format!("reading the logits: {e:?}")))
    }
}

/// `cos`/`sin` of `position * base^(-2i / head_dim)`, computed in `f32` as
/// the reference implementation does.
fn rotary_tables(c: &Config) -> (Vec<f32>, Vec<f32>) {
    let half = c.head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1.0 / c.rope_base.powf((2 * i) as f32 / c.head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(c.context * half);
    let mut sin = Vec::with_capacity(c.context * half);
    for p in 0..c.context {
        for f in &inv_freq {
            let angle = p as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

/// `x / sqrt(mean(x²) + eps) * weight` over the last dimension.
fn rms_norm(x: Tensor<2>, weight: &Tensor<2>, eps: f64) -> Tensor<2> {
    let scale = x
        .clone()
        .square()
        .mean_dim(1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    x * scale * weight.clone()
}

/// Rotates adjacent pairs of `x` (`[t, heads * head_dim]`) and returns it as
/// `[1, heads, t, head_dim]`.
fn rotate(
    x: Tensor<2>,
    heads: usize,
    head_dim: usize,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
) -> Tensor<4> {
    let [t, _] = x.dims();
    let half = head_dim / 2;
    let pairs = x.reshape([t, heads, half, 2]);
    let even = pairs.clone().slice([0..t, 0..heads, 0..half, 0..1]);
    let odd = pairs.slice([0..t, 0..heads, 0..half, 1..2]);
    let rotated = Tensor::cat(
        vec![
            even.clone() * cos.clone() - odd.clone() * sin.clone(),
            even * sin.clone() + odd * cos.clone(),
        ],
        3,
    );
    rotated
        .reshape([t, heads, head_dim])
        .swap_dims(0, 1)
        .unsqueeze::<4>()
}

impl Block {
    fn forward(
        &self,
        x: Tensor<2>,
        c: &Config,
        cos: &Tensor<4>,
        sin: &Tensor<4>,
        cache: &mut Option<(Tensor<4>, Tensor<4>)>,
    ) -> Tensor<2> {
        let [t, _] = x.dims();
        let kv_dim = c.kv_dim();
        let qkv = rms_norm(x.clone(), &self.attn_norm, c.eps).matmul(self.qkv.clone());
        let q = qkv.clone().slice([0..t, 0..c.dim]);
        let k = qkv.clone().slice([0..t, c.dim..c.dim + kv_dim]);
        let v = qkv.slice([0..t, c.dim + kv_dim..c.dim + 2 * kv_dim]);
        let q = rotate(q, c.heads, c.head_dim, cos, sin);
        let k = rotate(k, c.kv_heads, c.head_dim, cos, sin);
        let v = v
            .reshape([t, c.kv_heads, c.head_dim])
            .swap_dims(0, 1)
            .unsqueeze::<4>();
        let (k, v) = match cache.take() {
            Some((past_k, past_v)) => (
                Tensor::cat(vec![past_k, k], 2),
                Tensor::cat(vec![past_v, v], 2),
            ),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        // Grouped-query attention: the backend maps each query head to its
        // key/value head; causal with the cached positions before the new ones.
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let context = module::attention(q, k, v, None, None, options)
            .swap_dims(1, 2)
            .reshape([t, c.dim]);
        let x = x + context.matmul(self.out.clone());
        let gate_up = rms_norm(x.clone(), &self.ffn_norm, c.eps).matmul(self.gate_up.clone());
        let gate = gate_up.clone().slice([0..t, 0..c.ffn]);
        let up = gate_up.slice([0..t, c.ffn..2 * c.ffn]);
        x + (activation::silu(gate) * up).matmul(self.down.clone())
    }
}
