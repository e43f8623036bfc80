//! Policy patterns a client or operator avoids: `filters:*`, `geo:blocks:*`, or one exact
//! policy, matched against the policies providers announce (`[[chain]] policies`).

use std::sync::Arc;

/// Most patterns one `x-rpcmesh-avoid` header may carry (bounds per-request matching work).
pub const MAX_HEADER_PATTERNS: usize = 16;

/// A set of policy patterns. A pattern ending in `*` matches every policy that starts with
/// what comes before it; any other pattern matches one policy exactly (ASCII case-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Avoid {
    patterns: Arc<[String]>,
}

impl Avoid {
    /// Patterns as configured (`censorship.avoid`). A bare word (`filters`) means every policy
    /// of that family (`filters:*`).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let patterns: Vec<String> = patterns.iter().map(|p| normalise(p.as_ref())).filter(|p| !p.is_empty()).collect();
        Self { patterns: patterns.into() }
    }

    /// Parses an `x-rpcmesh-avoid` header: comma-separated patterns. `None` if it is not one.
    pub fn parse_header(value: &str) -> Option<Self> {
        let parts: Vec<&str> = value.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        if parts.is_empty()
            || parts.len() > MAX_HEADER_PATTERNS
            || parts.iter().any(|p| p.len() > 256 || !p.bytes().all(|b| b.is_ascii_graphic()))
        {
            return None;
        }
        Some(Self::new(&parts))
    }

    /// Whether no pattern is set.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// This set and `other`'s patterns together.
    pub fn union(&self, other: &Avoid) -> Avoid {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        let mut all: Vec<String> = self.patterns.to_vec();
        all.extend(other.patterns.iter().cloned());
        Avoid { patterns: all.into() }
    }

    /// The first announced policy a pattern matches, if any.
    pub fn matching<'a>(&self, policies: &'a [String]) -> Option<&'a str> {
        if self.is_empty() {
            return None;
        }
        policies.iter().find(|p| self.patterns.iter().any(|pat| matches(pat, p))).map(String::as_str)
    }
}

fn normalise(p: &str) -> String {
    let p = p.trim().to_ascii_lowercase();
    if p.is_empty() || p.contains(':') || p.ends_with('*') { p } else { format!("{p}:*") }
}

fn matches(pattern: &str, policy: &str) -> bool {
    match pattern.strip_suffix('*') {
        // Bytes, not a str slice: announced policies are any UTF-8 and must not split a char.
        Some(prefix) => {
            policy.len() >= prefix.len() && policy.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        }
        None => pattern.eq_ignore_ascii_case(policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pols(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn families_wildcards_and_exact_policies() {
        let a = Avoid::new(&["filters"]);
        assert_eq!(a.matching(&pols(&["geo:blocks:cu", "filters:ofac-sdn"])), Some("filters:ofac-sdn"));
        assert_eq!(a.matching(&pols(&["geo:blocks:cu"])), None);
        assert_eq!(a.matching(&pols(&["filtersx"])), None, "a family is the word before ':'");
        let a = Avoid::new(&["geo:blocks:*", "filters:address-list:abc"]);
        assert!(a.matching(&pols(&["GEO:blocks:IR"])).is_some());
        assert!(a.matching(&pols(&["filters:address-list:abc"])).is_some());
        assert!(a.matching(&pols(&["filters:address-list:abd"])).is_none());
        assert!(Avoid::new(&["*"]).matching(&pols(&["anything"])).is_some());
        assert!(Avoid::default().matching(&pols(&["filters:ofac-sdn"])).is_none());
        assert!(Avoid::new(&["fi*"]).matching(&pols(&["f\u{e9}x"])).is_none(), "no panic inside a char");
    }

    #[test]
    fn headers_are_bounded_and_well_formed() {
        let h = Avoid::parse_header("filters, geo:blocks:*").unwrap();
        assert!(h.matching(&pols(&["filters:x"])).is_some());
        assert!(h.matching(&pols(&["geo:blocks:ru"])).is_some());
        assert!(Avoid::parse_header("").is_none());
        assert!(Avoid::parse_header(" , ").is_none());
        assert!(Avoid::parse_header("a b").is_none());
        assert!(Avoid::parse_header(&vec!["x"; MAX_HEADER_PATTERNS + 1].join(",")).is_none());
        let both = Avoid::new(&["geo"]).union(&h);
        assert!(both.matching(&pols(&["filters:y"])).is_some());
    }
}
