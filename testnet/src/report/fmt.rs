//! Number and text formatting shared by the Markdown report and the plots.

/// Seconds with up to three decimals and trailing zeros trimmed: `5000` → `5 s`, `5250` → `5.25 s`.
pub fn secs(ms: u64) -> String {
    format!("{} s", secs_number(ms))
}

/// The number part of [`secs`]: `5250` → `5.25`.
pub fn secs_number(ms: u64) -> String {
    let whole = ms / 1000;
    let frac = ms % 1000;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:03}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A duration: `850 ms` below a second, otherwise as [`secs`].
pub fn duration(ms: u64) -> String {
    if ms < 1000 { format!("{ms} ms") } else { secs(ms) }
}

/// A latency in µs as milliseconds, without unit: two decimals below 10 ms, one below 100 ms,
/// none above (`830` → `0.83`, `12_340` → `12.3`, `1_234_000` → `1234`).
pub fn latency_ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if us < 10_000 {
        format!("{ms:.2}")
    } else if us < 100_000 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// [`latency_ms`] or `–` without data.
pub fn opt_latency_ms(us: Option<u64>) -> String {
    us.map_or_else(|| "–".to_string(), latency_ms)
}

/// `part / total` as a percentage, rounded **down** to two decimals so that anything short of
/// all is never shown as `100%`: `962/1000` → `96.2%`, `9999/10000` → `99.99%`, `99999/100000`
/// → `99.99%`. `n/a` if `total` is 0.
pub fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "n/a".to_string();
    }
    if part >= total {
        return "100%".to_string();
    }
    // Hundredths of a percent, rounded down, in integers.
    let hundredths = (part as u128 * 10_000 / total as u128) as u64;
    let s = format!("{}.{:02}", hundredths / 100, hundredths % 100);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Makes text safe inside a Markdown table cell (no `|`, no line breaks).
pub fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Escapes text for XML content and attribute values.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A list of node indexes: `[0, 2]` → `0, 2`.
pub fn list(items: &[usize]) -> String {
    items.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// `n thing` / `n things`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A shortened PeerId for legends: `12D3KooWAbc…xyz1`.
pub fn short_peer(peer: &str) -> String {
    let chars: Vec<char> = peer.chars().collect();
    if chars.len() <= 16 {
        return peer.to_string();
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_durations() {
        assert_eq!(secs(0), "0 s");
        assert_eq!(secs(5000), "5 s");
        assert_eq!(secs(5250), "5.25 s");
        assert_eq!(secs(5001), "5.001 s");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1200), "1.2 s");
    }

    #[test]
    fn latencies() {
        assert_eq!(latency_ms(830), "0.83");
        assert_eq!(latency_ms(12_340), "12.3");
        assert_eq!(latency_ms(1_234_000), "1234");
        assert_eq!(opt_latency_ms(None), "–");
    }

    #[test]
    fn percentages_round_down() {
        assert_eq!(percent(962, 1000), "96.2%");
        assert_eq!(percent(9999, 10_000), "99.99%");
        assert_eq!(percent(99_999, 100_000), "99.99%");
        assert_eq!(percent(1000, 1000), "100%");
        assert_eq!(percent(0, 7), "0%");
        assert_eq!(percent(2, 3), "66.66%");
        assert_eq!(percent(0, 0), "n/a");
    }

    #[test]
    fn escaping() {
        assert_eq!(xml(r#"a<b & "c" 'd'>"#), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(md_cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_735_689_599_000), "2024-12-31 23:59:59 UTC");
    }

    #[test]
    fn peers() {
        assert_eq!(short_peer("12D3KooWAbcdefghijklmnopqrstuvwxyz"), "12D3KooW…wxyz");
        assert_eq!(short_peer("short"), "short");
    }
}
