//! SmolLM2's tokenizer, built from the GGUF's vocabulary, merges and token
//! types: llama.cpp's `smollm` pre-tokenizer (digits split one by one, then
//! GPT-2's byte-level split) in front of byte-level BPE, and the ChatML
//! template.
//!
//! Control tokens (`<|im_start|>`, `<|im_end|>`, ...) are never parsed out of
//! text: a document or a question that contains the literal string
//! `<|im_start|>system` is encoded as ordinary characters. Only
//! [`ChatTokenizer::chat`] places control tokens, around each message.

use std::collections::HashMap;

use tokenizers::Tokenizer;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use crate::ModelError;
use crate::gguf::{Gguf, Value};

/// llama.cpp's token type for control tokens.
const CONTROL: i64 = 3;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message.
#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// Text to token ids and back.
pub struct ChatTokenizer {
    bpe: Tokenizer,
    /// The bytes each token stands for (empty for control tokens).
    bytes: Vec<Vec<u8>>,
    im_start: u32,
    im_end: u32,
    /// Tokens that end an answer.
    stops: Vec<u32>,
}

fn tokens_error(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// GPT-2's byte-to-character table, inverted: the byte each character of a
/// byte-level token stands for.
fn byte_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u8> = (b'!'..=b'~').collect();
    printable.extend(0xa1..=0xac);
    printable.extend(0xae..=0xff);
    let mut table: HashMap<char, u8> = printable.iter().map(|&b| (b as char, b)).collect();
    let mut next = 0u32;
    for b in 0..=255u8 {
        if !printable.contains(&b) {
            table.insert(char::from_u32(256 + next).expect("valid"), b);
            next += 1;
        }
    }
    table
}

impl ChatTokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(gguf: &Gguf) -> Result<ChatTokenizer, ModelError> {
        let model = gguf.str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(tokens_error(format!("tokenizer model {model} is not gpt2")));
        }
        let strings = |key: &str| -> Result<Vec<String>, ModelError> {
            gguf.array(key)?
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(tokens_error(format!("{key} holds a non-string"))),
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = gguf
            .array("tokenizer.ggml.token_type")?
            .iter()
            .map(|v| match v {
                Value::I64(t) => *t,
                Value::U64(t) => *t as i64,
                _ => 1,
            })
            .collect();
        if types.len() != tokens.len() {
            return Err(tokens_error("token types and tokens differ in length"));
        }
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| tokens_error(format!("merge {m:?} has no space")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(tokens_error)?;
        let mut tokenizer = Tokenizer::new(bpe);
        let split: Vec<PreTokenizerWrapper> = vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ];
        tokenizer.with_pre_tokenizer(Some(Sequence::new(split)));

        let decoder = byte_decoder();
        let bytes = tokens
            .iter()
            .zip(&types)
            .map(|(token, &kind)| {
                if kind == CONTROL {
                    Vec::new()
                } else {
                    token
                        .chars()
                        .flat_map(|c| match decoder.get(&c) {
                            Some(&b) => vec![b],
                            None => c.to_string().into_bytes(),
                        })
                        .collect()
                }
            })
            .collect();
        let id = |text: &str| -> Result<u32, ModelError> {
            tokens
                .iter()
                .position(|t| t == text)
                .map(|i| i as u32)
                .ok_or_else(|| tokens_error(format!("the vocabulary has no {text}")))
        };
        let im_start = id("<|im_start|>")?;
        let im_end = id("<|im_end|>")?;
        let mut stops = vec![im_end];
        if let Ok(eos) = gguf.usize("tokenizer.ggml.eos_token_id") {
            stops.push(eos as u32);
        }
        stops.extend(id("<|endoftext|>"));
        stops.sort_unstable();
        stops.dedup();
        let template = gguf.str("tokenizer.chat_template").unwrap_or("");
        if !template.contains("<|im_start|>") {
            return Err(tokens_error("the chat template is not ChatML"));
        }
        Ok(ChatTokenizer {
            bpe: tokenizer,
            bytes,
            im_start,
            im_end,
            stops,
        })
    }

    /// Encodes plain text; control-token strings in it stay plain text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        Ok(self
            .bpe
            .encode(text, false)
            .map_err(tokens_error)?
            .get_ids()
            .to_vec())
    }

    /// The ChatML prompt for `messages`, ending with the assistant's turn
    /// opened: `<|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n`.
    pub fn chat(&self, messages: &[Message]) -> Result<Vec<u32>, ModelError> {
        let newline = self.encode("\n")?;
        let mut ids = Vec::new();
        for message in messages {
            ids.push(self.im_start);
            ids.extend(self.encode(&format!("{}\n{}", message.role.name(), message.content))?);
            ids.push(self.im_end);
            ids.extend(&newline);
        }
        ids.push(self.im_start);
        ids.extend(self.encode("assistant\n")?);
        Ok(ids)
    }

    /// Whether `id` ends an answer.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stops.binary_search(&id).is_ok()
    }

    /// The bytes a token stands for (nothing for control tokens and ids
    /// outside the vocabulary).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Decodes ids to text (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id))
            .copied()
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }
}

/// Turns a stream of token bytes into text pieces on UTF-8 boundaries, so a
/// character split across tokens is emitted whole.
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    /// Adds a token's bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Bytes that can never become valid: replace them now.
            Err(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return text;
            }
        };
        let text = String::from_utf8(self.pending[..valid].to_vec()).expect("checked");
        self.pending.drain(..valid);
        text
    }

    /// Whatever is left at the end (an incomplete character is replaced).
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_covers_every_byte_once() {
        let table = byte_decoder();
        assert_eq!(table.len(), 256);
        assert_eq!(table[&'Ġ'], b' ');
        assert_eq!(table[&'Ċ'], b'\n');
        assert_eq!(table[&'a'], b'a');
    }

    #[test]
    fn streamed_text_keeps_split_characters_whole() {
        let mut stream = TextStream::default();
        let snowman = "☃".as_bytes();
        assert_eq!(stream.push(b"a "), "a ");
        assert_eq!(stream.push(&snowman[..1]), "");
        assert_eq!(stream.push(&snowman[1..]), "☃");
        assert_eq!(stream.push(&[0xff]), "\u{fffd}");
        assert_eq!(stream.push(&snowman[..2]), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }
}
