//! The sick-leave percentage and NAV's published rounding (`docs/nav-data.md` §1.5).
//!
//! NAV rounds `BigDecimal`s, i.e. the decimal numbers as written, so the rounding here works on the
//! shortest decimal that round-trips each `f64` (what Rust prints, and what `"20.23".parse()` came
//! from), in integer arithmetic: `1.45` is 1.45, not 1.4499999999999999556, and rounds half-up to 1.5.

/// The sick-leave percentage `100 * tapte / mulige` from raw dagsverk, unrounded.
///
/// This is the outcome the estimators use (`docs/statistics.md` A.1). `mulige == 0` gives an infinite or
/// NaN result; rows read by this module always have `mulige > 0`.
///
/// # Examples
/// ```
/// use ia_rct::statistics::percent;
/// assert_eq!(percent(1.0, 4.0), 25.0);
/// ```
pub fn percent(tapte: f64, mulige: f64) -> f64 {
    100.0 * tapte / mulige
}

/// The percentage as NAV shows it in everything it computes or exports (`docs/nav-data.md` §1.5).
///
/// First each dagsverk is rounded to one decimal, half-up (`UmaskertSykefraværUtenProsentForEttKvartal`,
/// applied "before any aggregation or export"); then NAV's "source of truth"
/// `tapte.divide(mulige, 3, HALF_UP).multiply(100).setScale(1, HALF_UP)`, i.e. the ratio rounded half-up
/// to three decimals, times 100. For an aggregate over quarters, pass sums of [`round_dagsverk`]ed
/// values.
///
/// Returns `None` if either value is negative or not finite, or `mulige` rounds to 0.0 (NAV's rule fails
/// on a zero denominator).
///
/// This can differ by 0.1 from the `prosent` DVH publishes, which is rounded from the *raw* dagsverk
/// ([`dvh_percent`]): docs/data-formats.md §2's example row has `prosent` 26.0 (20.23 / 77.8716) but shows as
/// 25.9 here (20.2 / 77.9).
///
/// # Examples
/// ```
/// use ia_rct::statistics::{display_percent, dvh_percent};
/// assert_eq!(display_percent(20.23, 77.8716), Some(25.9));
/// assert_eq!(dvh_percent(20.23, 77.8716), Some(26.0));
/// assert_eq!(display_percent(1.0, 0.0), None);
/// ```
pub fn display_percent(tapte: f64, mulige: f64) -> Option<f64> {
    if !valid(tapte, mulige) {
        return None;
    }
    match (tenths(tapte), tenths(mulige)) {
        (Some(t), Some(m)) => match permille(t, 1, m, 1) {
            Some(q) => Some(q as f64 / 10.0),
            None if m == 0 => None,
            None => fallback(round1(tapte), round1(mulige)),
        },
        // Beyond 38 digits (never in NAV's number(20,6) data): the same rule in f64.
        _ => fallback(round1(tapte), round1(mulige)),
    }
}

/// The `prosent` DVH publishes: `round(taptedv / muligedv * 100, 1)` on the raw dagsverk, half-up
/// (Oracle rounds half away from zero, the same for non-negative data; `docs/nav-data.md` §1.2, §1.5).
///
/// Returns `None` if either value is negative or not finite, or `mulige` is 0 (DVH writes 0 there;
/// rows with `mulige == 0` are refused on input).
///
/// # Examples
/// ```
/// use ia_rct::statistics::dvh_percent;
/// assert_eq!(dvh_percent(1.45, 100.0), Some(1.5)); // half-up on the decimal 1.45
/// ```
pub fn dvh_percent(tapte: f64, mulige: f64) -> Option<f64> {
    if !valid(tapte, mulige) {
        return None;
    }
    match (Decimal::of(tapte), Decimal::of(mulige)) {
        (Some(t), Some(m)) => match permille(t.digits, t.scale, m.digits, m.scale) {
            Some(q) => Some(q as f64 / 10.0),
            None if m.digits == 0 => None,
            None => fallback(tapte, mulige),
        },
        _ => fallback(tapte, mulige),
    }
}

/// Dagsverk rounded half-up to one decimal, as NAV rounds each quarter before aggregating or
/// exporting (`docs/nav-data.md` §1.5). `None` for negative or non-finite input.
///
/// # Examples
/// ```
/// use ia_rct::statistics::round_dagsverk;
/// assert_eq!(round_dagsverk(0.15), Some(0.2)); // the decimal 0.15, although the f64 is just below it
/// assert_eq!(round_dagsverk(77.8716), Some(77.9));
/// ```
pub fn round_dagsverk(dagsverk: f64) -> Option<f64> {
    if !(dagsverk.is_finite() && dagsverk >= 0.0) {
        return None;
    }
    Some(tenths(dagsverk).map_or_else(|| round1(dagsverk), |t| t as f64 / 10.0))
}

fn valid(tapte: f64, mulige: f64) -> bool {
    tapte.is_finite() && mulige.is_finite() && tapte >= 0.0 && mulige >= 0.0
}

/// The rule in `f64`, for numbers too long for exact integer arithmetic.
fn fallback(tapte: f64, mulige: f64) -> Option<f64> {
    (mulige > 0.0).then(|| round1(percent(tapte, mulige)))
}

/// Half-up (away from zero) to one decimal in `f64`: the fallback for numbers too long for `u128`.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A non-negative decimal `digits / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    digits: u128,
    scale: u32,
}

impl Decimal {
    /// The shortest decimal that round-trips `x` (Rust's `Display`, which never uses an exponent);
    /// `None` if `x` is negative, not finite, or has more than 38 digits.
    fn of(x: f64) -> Option<Decimal> {
        if !(x.is_finite() && x >= 0.0) {
            return None;
        }
        let text = format!("{}", x.abs());
        let (int, frac) = text.split_once('.').unwrap_or((text.as_str(), ""));
        let mut digits: u128 = 0;
        for c in int.chars().chain(frac.chars()) {
            digits = digits
                .checked_mul(10)?
                .checked_add(u128::from(c.to_digit(10)?))?;
        }
        Some(Decimal {
            digits,
            scale: u32::try_from(frac.len()).ok()?,
        })
    }
}

/// `x` rounded half-up to tenths, as a count of tenths.
fn tenths(x: f64) -> Option<u128> {
    let d = Decimal::of(x)?;
    if d.scale <= 1 {
        return d.digits.checked_mul(10u128.checked_pow(1 - d.scale)?);
    }
    let unit = 10u128.checked_pow(d.scale - 1)?;
    // unit is a power of ten >= 10, so unit / 2 is exact.
    Some(d.digits.checked_add(unit / 2)? / unit)
}

/// `t / m` rounded half-up to three decimals, in thousandths: floor((2000·T + M) / (2·M)) with both
/// brought to the same scale. `None` when `m` is 0 or the arithmetic would overflow.
fn permille(t: u128, t_scale: u32, m: u128, m_scale: u32) -> Option<u128> {
    let scale = t_scale.max(m_scale);
    let t = t.checked_mul(10u128.checked_pow(scale - t_scale)?)?;
    let m = m.checked_mul(10u128.checked_pow(scale - m_scale)?)?;
    if m == 0 {
        return None;
    }
    let numerator = t.checked_mul(2000)?.checked_add(m)?;
    Some(numerator / m.checked_mul(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_the_shortest_round_trip() {
        assert_eq!(
            Decimal::of(20.23),
            Some(Decimal {
                digits: 2023,
                scale: 2
            })
        );
        assert_eq!(
            Decimal::of(77.8716),
            Some(Decimal {
                digits: 778_716,
                scale: 4
            })
        );
        assert_eq!(
            Decimal::of(40.0),
            Some(Decimal {
                digits: 40,
                scale: 0
            })
        );
        assert_eq!(
            Decimal::of(-0.0),
            Some(Decimal {
                digits: 0,
                scale: 0
            })
        );
        assert_eq!(Decimal::of(-1.0), None);
        assert_eq!(Decimal::of(f64::NAN), None);
        assert_eq!(Decimal::of(1e300), None); // 301 digits
    }

    #[test]
    fn tenths_round_half_up_on_the_decimal() {
        assert_eq!(tenths(0.15), Some(2));
        assert_eq!(tenths(0.05), Some(1));
        assert_eq!(tenths(0.049999), Some(0));
        assert_eq!(tenths(2.675), Some(27));
        assert_eq!(tenths(7.0), Some(70));
        assert_eq!(tenths(148.534285), Some(1485));
    }

    #[test]
    fn permille_rounds_half_up() {
        // 1/16 = 0.0625 → 0.063 (half-even would give 0.062).
        assert_eq!(permille(1, 0, 16, 0), Some(63));
        // 1/8 = 0.125 exactly.
        assert_eq!(permille(1, 0, 8, 0), Some(125));
        assert_eq!(permille(1, 0, 0, 0), None);
    }

    #[test]
    fn huge_values_fall_back_to_f64() {
        assert_eq!(display_percent(1e300, 4e300), Some(25.0));
        assert_eq!(dvh_percent(1e300, 4e300), Some(25.0));
        assert_eq!(round_dagsverk(1e300), Some(1e300));
        assert_eq!(dvh_percent(1e-300, 0.0), None);
    }
}
