//! The MiniLM-L6 BERT encoder, written on burn tensors.
//!
//! Six post-norm transformer layers (hidden 384, 12 heads, feed-forward 1536,
//! exact GELU), then mean pooling over real tokens and L2 normalisation.

use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData, activation, module};
use safetensors::{Dtype, SafeTensors};

use crate::{DIM, ModelError};

const HEADS: usize = 12;
const HEAD_DIM: usize = DIM / HEADS;
const LAYERS: usize = 6;
const LAYER_NORM_EPS: f64 = 1e-12;

/// A dense layer, weights stored as `[in, out]`.
struct Linear {
    weight: Tensor<2>,
    bias: Tensor<1>,
}

impl Linear {
    /// `x · W + b`, one fused backend call.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        module::linear(x, self.weight.clone(), Some(self.bias.clone()))
    }
}

/// Layer normalisation over the last dimension.
struct LayerNorm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
}

impl LayerNorm {
    /// One fused backend call (burn-flex has a SIMD kernel for it).
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        module::layer_norm(
            x,
            self.gamma.clone(),
            Some(self.beta.clone()),
            LAYER_NORM_EPS,
        )
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The loaded encoder.
pub struct MiniLm {
    device: Device,
    word: Tensor<2>,
    position: Tensor<2>,
    token_type: Tensor<2>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

/// Reads named tensors out of a safetensors file onto a device.
struct Weights<'a> {
    file: SafeTensors<'a>,
    device: &'a Device,
}

impl Weights<'_> {
    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, ModelError> {
        let view = self
            .file
            .tensor(name)
            .map_err(|e| ModelError::Weights(format!("{name}: {e}")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(ModelError::Weights(format!(
                "{name}: expected F32 {shape:?}, found {:?} {:?}",
                view.dtype(),
                view.shape()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            self.device,
        ))
    }

    /// A PyTorch `Linear` (`[out, in]` weight), transposed for `x · W`.
    fn linear(&self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear, ModelError> {
        let weight: Tensor<2> = self.tensor(&format!("{prefix}.weight"), [outputs, inputs])?;
        let bias: Tensor<1> = self.tensor(&format!("{prefix}.bias"), [outputs])?;
        Ok(Linear {
            weight: weight.transpose(),
            bias,
        })
    }

    fn layer_norm(&self, prefix: &str) -> Result<LayerNorm, ModelError> {
        let gamma: Tensor<1> = self.tensor(&format!("{prefix}.weight"), [DIM])?;
        let beta: Tensor<1> = self.tensor(&format!("{prefix}.bias"), [DIM])?;
        Ok(LayerNorm { gamma, beta })
    }
}

impl MiniLm {
    /// Builds the encoder from the bytes of `model.safetensors`.
    pub fn from_safetensors(bytes: &[u8]) -> Result<MiniLm, ModelError> {
        let device = Device::flex();
        let file =
            SafeTensors::deserialize(bytes).map_err(|e| ModelError::Weights(e.to_string()))?;
        let w = Weights {
            file,
            device: &device,
        };
        let vocab = w
            .file
            .tensor("embeddings.word_embeddings.weight")
            .map_err(|e| ModelError::Weights(e.to_string()))?
            .shape()[0];
        let mut layers = Vec::with_capacity(LAYERS);
        for i in 0..LAYERS {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: w.linear(&format!("{p}.attention.self.query"), DIM, DIM)?,
                key: w.linear(&format!("{p}.attention.self.key"), DIM, DIM)?,
                value: w.linear(&format!("{p}.attention.self.value"), DIM, DIM)?,
                attention_out: w.linear(&format!("{p}.attention.output.dense"), DIM, DIM)?,
                attention_norm: w.layer_norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: w.linear(&format!("{p}.intermediate.dense"), DIM, 4 * DIM)?,
                output: w.linear(&format!("{p}.output.dense"), 4 * DIM, DIM)?,
                output_norm: w.layer_norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(MiniLm {
            word: w.tensor("embeddings.word_embeddings.weight", [vocab, DIM])?,
            position: w.tensor("embeddings.position_embeddings.weight", [512, DIM])?,
            token_type: w.tensor("embeddings.token_type_embeddings.weight", [2, DIM])?,
            embedding_norm: w.layer_norm("embeddings.LayerNorm")?,
            layers,
            device,
        })
    }

    /// Encodes a batch of token id sequences (each with [CLS] ... [SEP]) into
    /// unit vectors.
    pub fn forward(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let rows = batch.len();
        let len = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows * len);
        let mut mask = Vec::with_capacity(rows * len);
        for seq in batch {
            for i in 0..len {
                ids.push(seq.get(i).copied().unwrap_or(0) as i64);
                mask.push(if i < seq.len() { 1.0f32 } else { 0.0 });
            }
        }
        let positions: Vec<i64> = (0..rows).flat_map(|_| 0..len as i64).collect();
        let ids: Tensor<1, Int> =
            Tensor::from_data(TensorData::new(ids, [rows * len]), &self.device);
        let positions: Tensor<1, Int> =
            Tensor::from_data(TensorData::new(positions, [rows * len]), &self.device);
        let mask: Tensor<2> = Tensor::from_data(TensorData::new(mask, [rows, len]), &self.device);

        let token_type = self.token_type.clone().slice([0..1, 0..DIM]);
        let x = self.word.clone().select(0, ids)
            + self.position.clone().select(0, positions)
            + token_type;
        let mut x = self.embedding_norm.forward(x);

        // Padded keys get a large negative score so softmax ignores them.
        let key_bias = mask
            .clone()
            .sub_scalar(1.0)
            .mul_scalar(1e9)
            .reshape([rows, 1, 1, len]);
        for layer in &self.layers {
            x = layer.forward(x, key_bias.clone(), rows, len);
        }

        let hidden = x.reshape([rows, len, DIM]);
        let mask3: Tensor<3> = mask.reshape([rows, len, 1]);
        let summed = (hidden * mask3.clone()).sum_dim(1);
        let counts = mask3.sum_dim(1).clamp_min(1e-9);
        let pooled: Tensor<2> = (summed / counts).reshape([rows, DIM]);
        let norms = pooled.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
        let unit = pooled / norms;
        let values: Vec<f32> = unit
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| ModelError::Weights(format!("reading the output: {e:?}")))?;
        Ok(values.chunks_exact(DIM).map(<[f32]>::to_vec).collect())
    }
}

impl Layer {
    fn forward(&self, x: Tensor<2>, key_bias: Tensor<4>, rows: usize, len: usize) -> Tensor<2> {
        let heads = |t: Tensor<2>| t.reshape([rows, len, HEADS, HEAD_DIM]).swap_dims(1, 2);
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x.clone()));
        // Fused scaled dot-product attention (scale 1/sqrt(head_dim)); the
        // key bias broadcasts over heads and query positions.
        let context = module::attention(
            q,
            k,
            v,
            None,
            Some(key_bias),
            AttentionModuleOptions::default(),
        )
        .swap_dims(1, 2)
        .reshape([rows * len, DIM]);
        let attended = self
            .attention_norm
            .forward(self.attention_out.forward(context) + x);
        let hidden = activation::gelu(self.intermediate.forward(attended.clone()));
        self.output_norm
            .forward(self.output.forward(hidden) + attended)
    }
}
