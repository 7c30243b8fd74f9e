//! Section-aware chunking sized in model tokens.
//!
//! A section that fits the model's window is one chunk; a longer one is split
//! into windows of whole words with an overlap, so no text falls beyond the
//! 256-token truncation and every chunk keeps its section title and source span.

/// Target chunk size in model tokens (the model truncates at 256).
pub const TARGET_TOKENS: usize = 200;
/// Tokens shared by consecutive windows of one long section.
pub const OVERLAP_TOKENS: usize = 32;

/// A piece of text to embed, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The section title, if any.
    pub section: Option<String>,
    /// The text.
    pub text: String,
    /// Source span start (bytes).
    pub start: usize,
    /// Source span end (bytes, exclusive).
    pub end: usize,
}

/// Splits one section into pieces of at most about `TARGET_TOKENS` tokens,
/// counting tokens with `count`.
pub fn split(
    section: Option<&str>,
    text: &str,
    start: usize,
    end: usize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Piece> {
    let piece = |text: String, start: usize, end: usize| Piece {
        section: section.map(str::to_owned),
        text,
        start,
        end,
    };
    if count(text) <= TARGET_TOKENS {
        return vec![piece(text.to_owned(), start, end)];
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let weights: Vec<usize> = words
        .iter()
        .map(|w| count(w).saturating_sub(2).max(1))
        .collect();
    let mut pieces = Vec::new();
    let mut first = 0;
    while first < words.len() {
        let mut last = first;
        let mut used = 0;
        while last < words.len() && (used + weights[last] <= TARGET_TOKENS || last == first) {
            used += weights[last];
            last += 1;
        }
        // Spans of split pieces cover the whole section: word offsets inside
        // normalised text are not byte offsets of the source.
        pieces.push(piece(words[first..last].join(" "), start, end));
        if last >= words.len() {
            break;
        }
        let mut back = 0;
        let mut next = last;
        while next > first + 1 && back + weights[next - 1] <= OVERLAP_TOKENS {
            back += weights[next - 1];
            next -= 1;
        }
        first = next;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count() + 2
    }

    #[test]
    fn short_sections_are_one_piece() {
        let got = split(Some("Plan"), "Start metformin.", 10, 26, &words);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].section.as_deref(), Some("Plan"));
        assert_eq!((got[0].start, got[0].end), (10, 26));
    }

    #[test]
    fn long_sections_split_with_overlap_and_lose_no_word() {
        let text: Vec<String> = (0..500).map(|i| format!("w{i}")).collect();
        let text = text.join(" ");
        let got = split(None, &text, 0, text.len(), &words);
        assert!(got.len() >= 3);
        for piece in &got {
            assert!(piece.text.split_whitespace().count() <= TARGET_TOKENS);
        }
        for pair in got.windows(2) {
            let last_of_first = pair[0].text.split_whitespace().last().unwrap();
            assert!(
                pair[1].text.split_whitespace().any(|w| w == last_of_first),
                "no overlap"
            );
        }
        assert!(got.last().unwrap().text.ends_with("w499"));
    }
}
