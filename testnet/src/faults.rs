//! Fault specifications as researchers type them: `down`, `freeze`, `slow=200ms`,
//! `slow=200ms±50ms` (or `+-50ms`), `errors=0.3`, `stale=5`, `lie`, `lie=KIND[,KIND…]`,
//! `censor=0xADDRESS`, `overload=20` (requests/s), `heal`.
//!
//! `lie` alone lies in every way at once; `lie=balance,storage` only in the listed ways, so a test
//! can aim at one check of the integrity layer. Kinds ([`LieKind`]): `hash`, `balance`, `nonce`,
//! `code`, `storage`, `proof`, `header`, `tx`, `receipt`, `log-data`, `log-omit`, `call`.

use crate::sim::{Fault, LieKind, LieKinds};

/// Every fault spec form, for error messages.
const FAULT_FORMS: &str = "down, freeze, slow=200ms[±50ms], errors=0.3, stale=5, lie, lie=KIND[,KIND…], \
                           censor=0xADDRESS, overload=20 or heal";

/// Parses a fault specification.
pub fn parse_fault(spec: &str) -> Result<Fault, String> {
    let s = spec.trim();
    let (name, arg) = match s.split_once('=') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (s, None),
    };
    let need = |what: &str| arg.ok_or_else(|| format!("{name} needs a value, e.g. {name}={what}"));
    match name {
        "down" => Ok(Fault::Down),
        "freeze" => Ok(Fault::Freeze),
        "heal" | "none" => Ok(Fault::None),
        "lie" => match arg {
            None => Ok(Fault::Lie),
            Some(list) => parse_lies(list),
        },
        "slow" => {
            let a = need("200ms")?;
            let (delay, jitter) = match a.split_once('±').or_else(|| a.split_once("+-")) {
                Some((d, j)) => (parse_ms(d)?, parse_ms(j)?),
                None => (parse_ms(a)?, 0),
            };
            Ok(Fault::Slow { delay_ms: delay, jitter_ms: jitter })
        }
        "errors" => {
            let rate: f64 =
                need("0.3")?.parse().map_err(|_| format!("errors={} is not a number", arg.unwrap_or("")))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err("errors=RATE needs 0 <= RATE <= 1".into());
            }
            Ok(Fault::Errors { rate })
        }
        "stale" => {
            let blocks: u64 = need("5")?.parse().map_err(|_| "stale=BLOCKS needs a whole number".to_string())?;
            Ok(Fault::Stale { blocks })
        }
        "censor" => {
            let a = need("0x…(20 bytes)")?;
            let mut address = [0u8; 20];
            hex::decode_to_slice(a.trim_start_matches("0x"), &mut address)
                .map_err(|_| format!("censor={a} is not a 20-byte hex address"))?;
            Ok(Fault::Censor { address })
        }
        "overload" => {
            let max_per_sec: u32 =
                need("20")?.parse().map_err(|_| "overload=REQUESTS_PER_SEC needs a whole number".to_string())?;
            Ok(Fault::Overload { max_per_sec })
        }
        other => Err(format!("unknown fault {other:?}; use {FAULT_FORMS} (lie KINDs: {})", lie_kind_names())),
    }
}

/// `balance,storage` → those kinds; every kind is [`Fault::Lie`], so one fault has one form.
fn parse_lies(list: &str) -> Result<Fault, String> {
    let mut kinds = LieKinds::NONE;
    for name in list.split(',').map(str::trim) {
        let kind = LieKind::from_name(name).ok_or_else(|| {
            format!("lie={list}: unknown lie kind {name:?}; use lie alone (every kind) or lie=KIND[,KIND…] with KIND one of {}", lie_kind_names())
        })?;
        kinds = kinds.with(kind);
    }
    Ok(if kinds == LieKinds::ALL { Fault::Lie } else { Fault::LieAbout { kinds } })
}

fn lie_kind_names() -> String {
    LieKind::ALL.map(LieKind::name).join(", ")
}

fn parse_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().map(|n| n * mult).map_err(|_| format!("{s:?} is not a duration like 200ms or 2s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(parse_fault("down").unwrap(), Fault::Down);
        assert_eq!(parse_fault("freeze").unwrap(), Fault::Freeze);
        assert_eq!(parse_fault("heal").unwrap(), Fault::None);
        assert_eq!(parse_fault("slow=200ms").unwrap(), Fault::Slow { delay_ms: 200, jitter_ms: 0 });
        assert_eq!(parse_fault("slow=200ms±50ms").unwrap(), Fault::Slow { delay_ms: 200, jitter_ms: 50 });
        assert_eq!(parse_fault("slow=1s+-100ms").unwrap(), Fault::Slow { delay_ms: 1000, jitter_ms: 100 });
        assert_eq!(parse_fault("errors=0.3").unwrap(), Fault::Errors { rate: 0.3 });
        assert_eq!(parse_fault("stale=5").unwrap(), Fault::Stale { blocks: 5 });
        assert_eq!(parse_fault("lie").unwrap(), Fault::Lie);
        let kinds = |list: &[LieKind]| Fault::LieAbout { kinds: list.iter().copied().collect() };
        assert_eq!(parse_fault("lie=balance").unwrap(), kinds(&[LieKind::Balance]));
        assert_eq!(
            parse_fault("lie=balance, storage,log-omit").unwrap(),
            kinds(&[LieKind::Balance, LieKind::Storage, LieKind::LogOmit])
        );
        for kind in LieKind::ALL {
            assert_eq!(parse_fault(&format!("lie={}", kind.name())).unwrap(), kinds(&[kind]));
        }
        let every = LieKind::ALL.map(LieKind::name).join(",");
        assert_eq!(parse_fault(&format!("lie={every}")).unwrap(), Fault::Lie);
        assert_eq!(
            parse_fault("censor=0x00000000000000000000000000000000000000aa").unwrap(),
            Fault::Censor { address: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xaa] }
        );
        assert_eq!(parse_fault("overload=20").unwrap(), Fault::Overload { max_per_sec: 20 });
        for bad in [
            "explode",
            "slow",
            "errors=2",
            "stale=x",
            "censor=0x12",
            "overload",
            "overload=x",
            "lie=",
            "lie=balance,,nonce",
        ] {
            assert!(parse_fault(bad).is_err(), "{bad}");
        }
        let unknown_kind = parse_fault("lie=balance,lies").unwrap_err();
        assert!(unknown_kind.contains("\"lies\"") && unknown_kind.contains("log-omit"), "{unknown_kind}");
        let unknown = parse_fault("explode").unwrap_err();
        assert!(unknown.contains("lie=KIND") && unknown.contains("log-data"), "{unknown}");
    }
}
