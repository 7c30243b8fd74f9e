//! Reading numbers, ranges and dates as clinical sources write them.

/// A plain decimal number (`7.2`, `-1`, `140`), or `None` for anything else
/// (`<0.5`, `positive`, `1,200`).
pub fn number(text: &str) -> Option<f64> {
    let text = text.trim();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'));
    if !plain {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The bounds of a reference range: `4.0-5.6`, `3.5 - 5.0`, `<200`, `<=200`,
/// `>60`, `>= 60`. Unknown shapes give `(None, None)`.
pub fn range(text: &str) -> (Option<f64>, Option<f64>) {
    let text = text.trim();
    for prefix in ["<=", "<"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return (None, number(rest));
        }
    }
    for prefix in [">=", ">"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return (number(rest), None);
        }
    }
    // Split at a dash that is not a leading minus sign.
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate().skip(1) {
        if *b == b'-' && bytes[i - 1] != b'e' && bytes[i - 1] != b'E' {
            let (low, high) = (number(&text[..i]), number(&text[i + 1..]));
            if low.is_some() && high.is_some() {
                return (low, high);
            }
        }
    }
    (None, None)
}

/// An HL7 v2 / CDA timestamp (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`) as
/// RFC 3339 or a partial ISO date: `20240305` gives `2024-03-05`,
/// `202403051430-0500` gives `2024-03-05T14:30:00-05:00`. `None` when it is
/// not such a timestamp.
pub fn hl7_timestamp(ts: &str) -> Option<String> {
    let ts = ts.trim();
    let (digits, zone) = match ts.find(['+', '-']) {
        Some(i) => (&ts[..i], Some(&ts[i..])),
        None => (ts, None),
    };
    let digits = digits.split('.').next().unwrap_or(digits);
    if digits.len() < 4 || !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() % 2 == 1 {
        return None;
    }
    let part = |a: usize, b: usize| digits.get(a..b);
    let mut out = part(0, 4)?.to_owned();
    if let Some(m) = part(4, 6) {
        out += &format!("-{m}");
    }
    if let Some(d) = part(6, 8) {
        out += &format!("-{d}");
    }
    if let Some(h) = part(8, 10) {
        let min = part(10, 12).unwrap_or("00");
        let sec = part(12, 14).unwrap_or("00");
        out += &format!("T{h}:{min}:{sec}");
        match zone {
            Some(z) if z.len() == 5 && z[1..].chars().all(|c| c.is_ascii_digit()) => {
                out += &format!("{}:{}", &z[..3], &z[3..]);
            }
            _ => {}
        }
    }
    Some(out)
}

/// The day a clinical date falls on, as days since 1970-01-01: from the
/// first ten characters of an RFC 3339 time or a `YYYY-MM-DD` date; a month
/// (`YYYY-MM`) or a year (`YYYY`) counts from its first day.
pub fn epoch_day(date: &str) -> Option<i64> {
    let date = date.trim();
    let mut parts = date.get(..date.len().min(10))?.split('-');
    let year: i64 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let month: i64 = parts.next().map_or(Ok(1), str::parse).ok()?;
    let day: i64 = parts
        .next()
        .map_or(Ok(1), |d| d.get(..2).unwrap_or(d).parse())
        .ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_dates_count_days() {
        assert_eq!(epoch_day("1970-01-01"), Some(0));
        assert_eq!(epoch_day("2024-03-05T10:00:00Z"), Some(19_787));
        assert_eq!(epoch_day("2024-03"), epoch_day("2024-03-01"));
        assert_eq!(epoch_day("2024"), epoch_day("2024-01-01"));
        assert_eq!(epoch_day("2024-13-01"), None);
        assert_eq!(epoch_day("soon"), None);
    }

    #[test]
    fn numbers_are_plain_decimals_only() {
        assert_eq!(number("7.2"), Some(7.2));
        assert_eq!(number(" -1 "), Some(-1.0));
        assert_eq!(number("<0.5"), None);
        assert_eq!(number("positive"), None);
        assert_eq!(number("1,200"), None);
        assert_eq!(number(""), None);
    }

    #[test]
    fn ranges_in_their_usual_shapes() {
        assert_eq!(range("4.0-5.6"), (Some(4.0), Some(5.6)));
        assert_eq!(range("3.5 - 5.0"), (Some(3.5), Some(5.0)));
        assert_eq!(range("<200"), (None, Some(200.0)));
        assert_eq!(range(">= 60"), (Some(60.0), None));
        assert_eq!(range("-2-2"), (Some(-2.0), Some(2.0)));
        assert_eq!(range("negative"), (None, None));
    }

    #[test]
    fn hl7_timestamps() {
        assert_eq!(hl7_timestamp("2024").as_deref(), Some("2024"));
        assert_eq!(hl7_timestamp("20240305").as_deref(), Some("2024-03-05"));
        assert_eq!(
            hl7_timestamp("202403051430").as_deref(),
            Some("2024-03-05T14:30:00")
        );
        assert_eq!(
            hl7_timestamp("20240305143015.123-0500").as_deref(),
            Some("2024-03-05T14:30:15-05:00")
        );
        assert_eq!(hl7_timestamp("2024030"), None);
        assert_eq!(hl7_timestamp("abc"), None);
    }
}
