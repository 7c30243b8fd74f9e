//! A reader for GGUF v3 files (llama.cpp's model format): the metadata, the
//! tensor directory, and dequantisation of the tensor types SmolLM2 ships in
//! (F32, F16, Q4_0, Q4_1, Q8_0) to `f32`.
//!
//! The whole file is read into memory once; tensors are dequantised on
//! demand. Every offset and size is checked against the file, so a truncated
//! or hostile file is an error, never a panic.

use std::collections::HashMap;

use crate::ModelError;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    U64(u64),
    /// Any signed integer type.
    I64(i64),
    /// `f32` or `f64`.
    F64(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    Str(String),
    /// An array of values.
    Array(Vec<Value>),
}

/// The ggml tensor types this reader dequantises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl TensorType {
    fn from_id(id: u32) -> Option<TensorType> {
        Some(match id {
            0 => TensorType::F32,
            1 => TensorType::F16,
            2 => TensorType::Q4_0,
            3 => TensorType::Q4_1,
            8 => TensorType::Q8_0,
            _ => return None,
        })
    }

    /// (elements per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            TensorType::F32 => (1, 4),
            TensorType::F16 => (1, 2),
            TensorType::Q4_0 => (32, 18),
            TensorType::Q4_1 => (32, 20),
            TensorType::Q8_0 => (32, 34),
        }
    }
}

/// Where a tensor lives in the file.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// ggml order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<usize>,
    pub kind: TensorType,
    /// Absolute byte range in the file.
    start: usize,
    len: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file held in memory.
pub struct Gguf {
    bytes: Vec<u8>,
    metadata: HashMap<String, Value>,
    tensors: HashMap<String, TensorInfo>,
}

fn bad(what: impl Into<String>) -> ModelError {
    ModelError::Weights(format!("GGUF: {}", what.into()))
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| bad("the header runs past the end of the file"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A length that must fit what is left of the file (each item at least
    /// `min_item` bytes), so a hostile count cannot make us allocate.
    fn count(&mut self, min_item: usize) -> Result<usize, ModelError> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_item.max(1) as u64) > left {
            return Err(bad("a count is larger than the file"));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| bad("a string is not UTF-8"))
    }

    fn value(&mut self, kind: u32, depth: u8) -> Result<Value, ModelError> {
        Ok(match kind {
            0 => Value::U64(self.array::<1>()?[0] as u64),
            1 => Value::I64(self.array::<1>()?[0] as i8 as i64),
            2 => Value::U64(u16::from_le_bytes(self.array()?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::U64(self.u32()? as u64),
            5 => Value::I64(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::F64(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth == 0 => {
                let item = self.u32()?;
                let n = self.count(1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(bad(format!("unknown metadata type {other}"))),
        })
    }
}

impl Gguf {
    /// Parses the header and tensor directory of a GGUF v2/v3 file.
    pub fn parse(bytes: Vec<u8>) -> Result<Gguf, ModelError> {
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
        };
        if c.take(4)? != MAGIC {
            return Err(bad("not a GGUF file"));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(bad(format!("unsupported version {version}")));
        }
        let tensor_count = c.count(24)?;
        let kv_count = c.count(12)?;
        let mut metadata = HashMap::with_capacity(kv_count);
        for _ in 0..kv_count {
            let key = c.string()?;
            let kind = c.u32()?;
            metadata.insert(key, c.value(kind, 0)?);
        }
        let mut directory = Vec::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let name = c.string()?;
            let rank = c.u32()? as usize;
            if rank == 0 || rank > 4 {
                return Err(bad(format!("{name}: rank {rank}")));
            }
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(usize::try_from(c.u64()?).map_err(|_| bad("a dimension overflows"))?);
            }
            let id = c.u32()?;
            let kind = TensorType::from_id(id)
                .ok_or_else(|| bad(format!("{name}: unsupported tensor type {id}")))?;
            let offset = c.u64()?;
            directory.push((name, dims, kind, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            Some(Value::U64(a)) if *a > 0 && a.is_power_of_two() => *a,
            _ => DEFAULT_ALIGNMENT,
        };
        let data_start = (c.at as u64).div_ceil(alignment) * alignment;
        let mut tensors = HashMap::with_capacity(tensor_count);
        for (name, dims, kind, offset) in directory {
            let elements = dims
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad(format!("{name}: too many elements")))?;
            let (per_block, block_bytes) = kind.block();
            if elements % per_block != 0 || dims[0] % per_block != 0 {
                return Err(bad(format!("{name}: rows are not whole blocks")));
            }
            let len = elements / per_block * block_bytes;
            let start = data_start
                .checked_add(offset)
                .and_then(|s| usize::try_from(s).ok())
                .ok_or_else(|| bad(format!("{name}: offset overflows")))?;
            if start.checked_add(len).is_none_or(|end| end > bytes.len()) {
                return Err(bad(format!("{name}: data runs past the end of the file")));
            }
            tensors.insert(
                name,
                TensorInfo {
                    dims,
                    kind,
                    start,
                    len,
                },
            );
        }
        Ok(Gguf {
            bytes,
            metadata,
            tensors,
        })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A required unsigned integer.
    pub fn usize(&self, key: &str) -> Result<usize, ModelError> {
        match self.get(key) {
            Some(Value::U64(v)) => usize::try_from(*v).map_err(|_| bad(format!("{key} overflows"))),
            Some(Value::I64(v)) if *v >= 0 => Ok(*v as usize),
            _ => Err(bad(format!("{key} is missing or not an integer"))),
        }
    }

    /// A required float.
    pub fn f64(&self, key: &str) -> Result<f64, ModelError> {
        match self.get(key) {
            Some(Value::F64(v)) => Ok(*v),
            _ => Err(bad(format!("{key} is missing or not a float"))),
        }
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Result<&str, ModelError> {
        match self.get(key) {
            Some(Value::Str(v)) => Ok(v),
            _ => Err(bad(format!("{key} is missing or not a string"))),
        }
    }

    /// A required array.
    pub fn array(&self, key: &str) -> Result<&[Value], ModelError> {
        match self.get(key) {
            Some(Value::Array(v)) => Ok(v),
            _ => Err(bad(format!("{key} is missing or not an array"))),
        }
    }

    /// A tensor's directory entry.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, ModelError> {
        self.tensors
            .get(name)
            .ok_or_else(|| bad(format!("tensor {name} is missing")))
    }

    /// Dequantises a tensor, checking its ggml dims (innermost first).
    pub fn f32(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>, ModelError> {
        let info = self.tensor(name)?;
        if info.dims != dims {
            return Err(bad(format!(
                "{name}: dims {:?}, expected {dims:?}",
                info.dims
            )));
        }
        let data = &self.bytes[info.start..info.start + info.len];
        Ok(dequantise(info.kind, data, info.elements()))
    }
}

/// IEEE 754 half to single precision.
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exponent = ((bits >> 10) & 0x1f) as u32;
    let mantissa = (bits & 0x3ff) as u32;
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: value = mantissa * 2^-24.
        (0, m) => return sign_of(sign) * m as f32 * f32::powi(2.0, -24),
        (0x1f, 0) => 0x7f80_0000,
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

fn sign_of(sign: u32) -> f32 {
    if sign == 0 { 1.0 } else { -1.0 }
}

fn half(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// Dequantises `elements` values of `kind` from `data` (sizes already checked).
fn dequantise(kind: TensorType, data: &[u8], elements: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(elements);
    match kind {
        TensorType::F32 => out.extend(
            data.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        TensorType::F16 => out.extend(data.chunks_exact(2).map(half)),
        TensorType::Q4_0 => {
            for block in data.chunks_exact(18) {
                let d = half(&block[0..2]);
                let qs = &block[2..18];
                out.extend(qs.iter().map(|q| ((q & 0x0f) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        TensorType::Q4_1 => {
            for block in data.chunks_exact(20) {
                let d = half(&block[0..2]);
                let m = half(&block[2..4]);
                let qs = &block[4..20];
                out.extend(qs.iter().map(|q| (q & 0x0f) as f32 * d + m));
                out.extend(qs.iter().map(|q| (q >> 4) as f32 * d + m));
            }
        }
        TensorType::Q8_0 => {
            for block in data.chunks_exact(34) {
                let d = half(&block[0..2]);
                out.extend(block[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn quantised_blocks_dequantise_low_nibbles_first() {
        // Q4_1: d = 0.5, m = -1.0; byte j holds element j (low) and j + 16 (high).
        let mut block = vec![0x00, 0x38, 0x00, 0xbc];
        block.extend((0..16u8).map(|j| (15 - j) << 4 | j));
        let values = dequantise(TensorType::Q4_1, &block, 32);
        assert_eq!(values[0], -1.0);
        assert_eq!(values[3], 0.5);
        assert_eq!(values[16], 6.5);
        assert_eq!(values[31], -1.0);
        // Q8_0: d = 2.0, signed bytes.
        let mut block = vec![0x00, 0x40];
        block.extend((0..32u8).map(|j| (j as i8 - 16) as u8));
        let values = dequantise(TensorType::Q8_0, &block, 32);
        assert_eq!(values[0], -32.0);
        assert_eq!(values[31], 30.0);
    }

    #[test]
    fn truncated_or_hostile_headers_are_errors() {
        assert!(Gguf::parse(b"GGUF".to_vec()).is_err());
        assert!(Gguf::parse(b"NOPE\x03\0\0\0".to_vec()).is_err());
        // Version 3, u64::MAX tensors: refused before allocating.
        let mut file = b"GGUF\x03\0\0\0".to_vec();
        file.extend(u64::MAX.to_le_bytes());
        file.extend(0u64.to_le_bytes());
        assert!(Gguf::parse(file).is_err());
        // No tensors, one string key whose length runs past the end.
        let mut file = b"GGUF\x03\0\0\0".to_vec();
        file.extend(0u64.to_le_bytes());
        file.extend(1u64.to_le_bytes());
        file.extend(1000u64.to_le_bytes());
        assert!(Gguf::parse(file).is_err());
    }
}
