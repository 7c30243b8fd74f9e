//! The figures a text states: dates and numbers, normalised so that an
//! answer's "March 5, 2024" matches the evidence's 2024-03-05 and "7.20"
//! matches "7.2". Grounding checks an answer's figures against them.

use std::collections::BTreeSet;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The facts a text states in figures: dates (as `YYYY-MM-DD`, or
/// `YYYY-MM` / `YYYY` where that is all it says) and other numbers (as
/// normalised decimals: `7.20` and `7.2` are one number, `1,000` is `1000`).
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    pub dates: BTreeSet<String>,
    pub numbers: BTreeSet<String>,
}

fn normalise_number(raw: &str) -> String {
    let plain: String = raw.chars().filter(|&c| c != ',').collect();
    if let Some((whole, frac)) = plain.split_once('.') {
        let frac = frac.trim_end_matches('0');
        let whole = whole.trim_start_matches('0');
        let whole = if whole.is_empty() { "0" } else { whole };
        if frac.is_empty() {
            whole.to_owned()
        } else {
            format!("{whole}.{frac}")
        }
    } else {
        let t = plain.trim_start_matches('0');
        if t.is_empty() {
            "0".into()
        } else {
            t.to_owned()
        }
    }
}

fn month_of(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| w.starts_with(m))
        .map(|i| i as u32 + 1)
}

/// Tokens of a text: runs of digits (with inner `.`/`,` between digits),
/// words (a letter, then letters and digits), and single other characters.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let mut j = i + 1;
        if c.is_ascii_digit() {
            while j < chars.len() {
                let d = chars[j].1;
                let joins = (d == '.' || d == ',')
                    && chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit());
                if d.is_ascii_digit() || joins {
                    j += 1;
                } else {
                    break;
                }
            }
        } else if c.is_alphabetic() {
            // A word may hold digits (`HbA1c`, `B12`): they are not figures.
            while j < chars.len() && chars[j].1.is_alphanumeric() {
                j += 1;
            }
        }
        let end = chars.get(j).map_or(text.len(), |n| n.0);
        if !c.is_whitespace() {
            out.push(&text[start..end]);
        }
        i = j;
    }
    out
}

fn is_number(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_digit())
}

fn date(y: &str, m: u32, d: Option<&str>) -> Option<String> {
    let year: u32 = y.parse().ok().filter(|y| (1900..=2100).contains(y))?;
    if !(1..=12).contains(&m) {
        return None;
    }
    match d {
        Some(d) => {
            let day: u32 = d.parse().ok().filter(|d| (1..=31).contains(d))?;
            Some(format!("{year:04}-{m:02}-{day:02}"))
        }
        None => Some(format!("{year:04}-{m:02}")),
    }
}

impl Figures {
    /// Reads the figures of a text (without citation markers).
    pub fn of(text: &str) -> Figures {
        let t = tokens(text);
        let mut figures = Figures::default();
        let mut i = 0;
        while i < t.len() {
            let at = |k: usize| t.get(i + k).copied().unwrap_or("");
            // 2024-03-05 / 2024/03/05
            if is_number(at(0))
                && at(0).len() == 4
                && matches!(at(1), "-" | "/")
                && is_number(at(2))
            {
                let m: u32 = at(2).parse().unwrap_or(0);
                let day = (matches!(at(3), "-" | "/") && is_number(at(4))).then(|| at(4));
                if let Some(d) = date(at(0), m, day) {
                    figures.add_date(d);
                    i += if day.is_some() { 5 } else { 3 };
                    continue;
                }
            }
            // 05/03/2024 or 03/05/2024: ambiguous; both readings count.
            if is_number(at(0))
                && at(1) == "/"
                && is_number(at(2))
                && at(3) == "/"
                && at(4).len() == 4
            {
                let a: u32 = at(0).parse().unwrap_or(0);
                let b: u32 = at(2).parse().unwrap_or(0);
                let mut any = false;
                for (m, d) in [(a, at(2)), (b, at(0))] {
                    if let Some(date) = date(at(4), m, Some(d)) {
                        figures.add_date(date);
                        any = true;
                    }
                }
                if any {
                    i += 5;
                    continue;
                }
            }
            // March 5, 2024 / March 2024
            if let Some(m) = month_of(at(0)) {
                if is_number(at(1)) && at(1).len() <= 2 {
                    let k = if at(2) == "," { 3 } else { 2 };
                    if at(k).len() == 4
                        && let Some(d) = date(at(k), m, Some(at(1)))
                    {
                        figures.add_date(d);
                        i += k + 1;
                        continue;
                    }
                }
                if at(1).len() == 4
                    && let Some(d) = date(at(1), m, None)
                {
                    figures.add_date(d);
                    i += 2;
                    continue;
                }
            }
            // 5 March 2024
            if is_number(at(0))
                && at(0).len() <= 2
                && let Some(m) = month_of(at(1))
                && at(2).len() == 4
                && let Some(d) = date(at(2), m, Some(at(0)))
            {
                figures.add_date(d);
                i += 3;
                continue;
            }
            if is_number(at(0)) {
                figures.numbers.insert(normalise_number(at(0)));
            }
            i += 1;
        }
        figures
    }

    /// Adds a date and what a sentence may say of it: its year, its month.
    fn add_date(&mut self, iso: String) {
        self.numbers.insert(normalise_number(&iso[..4]));
        if iso.len() >= 7 {
            self.dates.insert(iso[..7].to_owned());
        }
        self.dates.insert(iso);
    }

    /// Whether every figure of `self` is among `evidence`'s.
    pub fn within(&self, evidence: &Figures) -> bool {
        self.dates.iter().all(|d| evidence.dates.contains(d))
            && self.numbers.iter().all(|n| evidence.numbers.contains(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_normalise_numbers_and_dates() {
        let f = Figures::of("HbA1c 7.20 % on 2024-03-05, weight 1,000 g, seen March 5, 2024.");
        assert!(f.numbers.contains("7.2") && f.numbers.contains("1000"));
        assert!(f.dates.contains("2024-03-05"));
        assert!(Figures::of("on 5 Mar 2024").within(&f));
        assert!(Figures::of("in March 2024").within(&f));
        assert!(Figures::of("in 2024").within(&f));
        assert!(!Figures::of("on 2024-03-06").within(&f));
        assert!(!Figures::of("7.3 %").within(&f));
        // A slash date reads both ways.
        let g = Figures::of("seen 03/05/2024");
        assert!(g.dates.contains("2024-03-05") && g.dates.contains("2024-05-03"));
    }
}
