//! Grounding, enforced by the host: an answer is let through sentence by
//! sentence, and a sentence passes only if it cites evidence (`[n]` markers
//! that name evidence the model was given) and every number and date in it
//! appears in the evidence it cites. Whatever the model writes, a clinician
//! sees only sentences that point at the record and agree with it on figures.

use super::figures::Figures;

/// A sentence the host accepted, with the evidence numbers it cites.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub text: String,
    pub cites: Vec<usize>,
}

/// Why a sentence was dropped (counted, never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// No `[n]` marker after its text, or one naming no evidence.
    Uncited,
    /// A number or date not found in the cited evidence, or too few of its
    /// words found there.
    Unsupported,
}

/// Words that carry no claim: a sentence is judged on the others.
const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "was",
    "were",
    "are",
    "has",
    "had",
    "have",
    "her",
    "his",
    "she",
    "him",
    "they",
    "their",
    "this",
    "that",
    "with",
    "for",
    "from",
    "not",
    "but",
    "been",
    "being",
    "which",
    "who",
    "what",
    "when",
    "where",
    "does",
    "did",
    "patient",
    "patients",
    "record",
    "records",
    "evidence",
    "last",
    "latest",
    "most",
    "recent",
    "current",
    "currently",
    "also",
    "there",
    "then",
    "than",
    "into",
    "onto",
    "over",
    "any",
    "all",
    "some",
    "its",
    "according",
    "shows",
    "show",
    "states",
    "says",
    "said",
    "note",
    "notes",
    "based",
];

/// The claim-bearing words of a text, by their first five letters.
fn content_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && w.chars().any(char::is_alphabetic))
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| w.chars().take(5).collect())
        .collect()
}

/// Splits streamed text into sentences as they complete. A sentence ends at
/// `.`, `!` or `?` followed by white space (not a decimal point), or at a
/// line break; citation markers right after the end belong to it.
#[derive(Default)]
pub struct Sentences {
    buffer: String,
}

impl Sentences {
    /// Adds text; returns the sentences it completed.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.buffer.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = sentence_end(&self.buffer) {
            let sentence: String = self.buffer.drain(..end).collect();
            if !sentence.trim().is_empty() {
                out.push(sentence.trim().to_owned());
            }
        }
        out
    }

    /// The unfinished rest, as a last sentence.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }
}

/// Where the first complete sentence of `text` ends (exclusive), if the text
/// after it shows that it is complete.
fn sentence_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            return Some(i + 1);
        }
        if matches!(b, b'.' | b'!' | b'?') {
            // Need the next byte to decide (a decimal point, an ellipsis, a
            // marker that follows).
            let next = *bytes.get(i + 1)?;
            if !(next == b' ' || next == b'\n' || next == b'\t') {
                continue;
            }
            // Markers after the full stop ("... 7.2 %. [1]") stay with it.
            let mut end = i + 1;
            let rest = &text[end..];
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if trimmed.starts_with('[') {
                let close = trimmed.find(']')?;
                let inner = &trimmed[1..close];
                if inner
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
                {
                    end += rest.len() - trimmed.len() + close + 1;
                }
            }
            return Some(end);
        }
    }
    None
}

/// The evidence numbers a sentence cites: `[1]`, `[1, 2]`, `[1][3]`.
pub fn markers(sentence: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inner = &rest[..close];
        if !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == ' ')
        {
            out.extend(
                inner
                    .split(',')
                    .filter_map(|n| n.trim().parse::<usize>().ok()),
            );
        }
        rest = &rest[close + 1..];
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Removes `[n]` markers from a sentence.
pub fn without_markers(sentence: &str) -> String {
    let mut out = String::with_capacity(sentence.len());
    let mut rest = sentence;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close)
                if !after[..close].is_empty()
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == ' ') =>
            {
                out.push_str(&rest[..open]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..open + 1]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Strips a list enumerator ("1. ", "2) ") at the start of a sentence.
fn without_enumerator(sentence: &str) -> &str {
    let trimmed = sentence.trim_start();
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && digits <= 2 {
        let rest = &trimmed[digits..];
        if let Some(after) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return after;
        }
    }
    trimmed.trim_start_matches(['-', '*', '•', ' '])
}

/// Checks one sentence against the evidence texts (numbered from 1): it must
/// say something before its markers, cite evidence it was given, hold no
/// figure the cited evidence lacks, and share at least half of its
/// claim-bearing words with it.
pub fn check(sentence: &str, evidence: &[&str]) -> Result<Accepted, Dropped> {
    let body = without_enumerator(sentence);
    // Markers before any text, or a marker followed by an evidence label
    // (`[2] (note) "…`), are an echo of the evidence list, not a citation.
    let echo = body
        .match_indices(']')
        .any(|(i, _)| body[i + 1..].trim_start().starts_with('('));
    if echo
        || body.starts_with('[')
        || without_markers(body)
            .chars()
            .filter(|c| c.is_alphabetic())
            .count()
            < 3
    {
        return Err(Dropped::Uncited);
    }
    let cites: Vec<usize> = markers(body);
    if cites.is_empty() || cites.iter().any(|&n| n == 0 || n > evidence.len()) {
        return Err(Dropped::Uncited);
    }
    let cited: String = cites
        .iter()
        .map(|&n| evidence[n - 1])
        .collect::<Vec<_>>()
        .join("\n");
    if !Figures::of(&without_markers(body)).within(&Figures::of(&cited)) {
        return Err(Dropped::Unsupported);
    }
    let claimed = content_words(&without_markers(body));
    let known = content_words(&cited);
    let found = claimed.iter().filter(|w| known.contains(w)).count();
    if found * 2 < claimed.len() {
        return Err(Dropped::Unsupported);
    }
    Ok(Accepted {
        text: body.trim().to_owned(),
        cites,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_stops_not_at_decimals_and_keep_their_markers() {
        let mut s = Sentences::default();
        assert!(s.push("HbA1c was 7").is_empty());
        assert!(s.push(".2 % on 2024-03-05").is_empty());
        assert_eq!(
            s.push(". [1] Metformin"),
            vec!["HbA1c was 7.2 % on 2024-03-05. [1]"]
        );
        assert_eq!(s.push(" 500 mg [2]. Next"), vec!["Metformin 500 mg [2]."]);
        assert_eq!(s.finish().as_deref(), Some("Next"));
        let mut s = Sentences::default();
        assert_eq!(s.push("One\nTwo [1]! Three"), vec!["One", "Two [1]!"]);
    }

    #[test]
    fn markers_are_read_and_removed() {
        assert_eq!(markers("a [2] b [1, 3][2]."), vec![1, 2, 3]);
        assert!(markers("see [note] and [] and [x1]").is_empty());
        assert_eq!(without_markers("HbA1c 7.2 % [1]."), "HbA1c 7.2 % .");
        assert_eq!(without_markers("a [note] b"), "a [note] b");
    }

    #[test]
    fn a_sentence_passes_only_cited_and_supported() {
        let evidence = [
            "HbA1c 7.2 % on 2024-03-05.",
            "Metformin 500 mg twice daily.",
        ];
        let ok = check("The last HbA1c was 7.2 % on March 5, 2024 [1].", &evidence).unwrap();
        assert_eq!(ok.cites, vec![1]);
        assert_eq!(
            check("The HbA1c was 7.2 %.", &evidence),
            Err(Dropped::Uncited)
        );
        assert_eq!(check("It was 7.2 % [3].", &evidence), Err(Dropped::Uncited));
        assert_eq!(
            check("It was 8.1 % [1].", &evidence),
            Err(Dropped::Unsupported)
        );
        // The figure is in the other evidence, not the one cited.
        assert_eq!(
            check("Metformin 7.2 mg [2].", &evidence),
            Err(Dropped::Unsupported)
        );
        assert!(check("1. Metformin 500 mg [2].", &evidence).is_ok());
        assert!(check("He takes metformin twice daily [2].", &evidence).is_ok());
        // An echo of the evidence list, and a claim the evidence does not make.
        assert_eq!(
            check("[1] (note) \"HbA1c 7.2 %.", &evidence),
            Err(Dropped::Uncited)
        );
        assert_eq!(
            check("It is: [1] (note) \"HbA1c 7.2 %.\"", &evidence),
            Err(Dropped::Uncited)
        );
        assert_eq!(
            check("The patient is healthy and well [1].", &evidence),
            Err(Dropped::Unsupported)
        );
        // Digits inside a word are not figures.
        assert!(check("His HbA1c is 7.2 percent [1].", &evidence).is_ok());
    }
}
