//! Numbers across BSON's four numeric types: exact ordering and MongoDB's arithmetic type promotion.
//!
//! Decimal128 values are handled through `f64` (bson 3 has no decimal arithmetic), so decimal comparison and
//! arithmetic are approximate beyond 15–17 significant digits; results of arithmetic involving a decimal are
//! decimals, as in MongoDB.
use std::cmp::Ordering;

use bson::{Bson, Decimal128};

/// A BSON number, borrowed out of a `Bson`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Number {
    Int32(i32),
    Int64(i64),
    Double(f64),
    Decimal(f64),
}

/// Why an arithmetic operation has no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithmeticError {
    /// An int64 result does not fit.
    Overflow,
}

impl Number {
    pub(crate) fn from_bson(value: &Bson) -> Option<Number> {
        match value {
            Bson::Int32(i) => Some(Number::Int32(*i)),
            Bson::Int64(i) => Some(Number::Int64(*i)),
            Bson::Double(d) => Some(Number::Double(*d)),
            Bson::Decimal128(d) => Some(Number::Decimal(decimal_to_f64(d))),
            _ => None,
        }
    }

    pub(crate) fn to_bson(self) -> Bson {
        match self {
            Number::Int32(i) => Bson::Int32(i),
            Number::Int64(i) => Bson::Int64(i),
            Number::Double(d) => Bson::Double(d),
            Number::Decimal(d) => Bson::Decimal128(f64_to_decimal(d)),
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::Int32(i) => f64::from(i),
            Number::Int64(i) => i as f64,
            Number::Double(d) | Number::Decimal(d) => d,
        }
    }

    /// The value as an integer when it is one exactly (a whole double in range counts).
    pub(crate) fn as_exact_i64(self) -> Option<i64> {
        match self {
            Number::Int32(i) => Some(i64::from(i)),
            Number::Int64(i) => Some(i),
            Number::Double(d) | Number::Decimal(d) => f64_to_exact_i64(d),
        }
    }

    /// Truncated toward zero; `None` for NaN or out-of-range values.
    pub(crate) fn truncated_i64(self) -> Option<i64> {
        match self {
            Number::Int32(i) => Some(i64::from(i)),
            Number::Int64(i) => Some(i),
            Number::Double(d) | Number::Decimal(d) => f64_to_exact_i64(d.trunc()),
        }
    }
}

fn f64_to_exact_i64(d: f64) -> Option<i64> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if d.is_finite() && d.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&d) {
        Some(d as i64)
    } else {
        None
    }
}

pub(crate) fn decimal_to_f64(value: &Decimal128) -> f64 {
    value.to_string().parse::<f64>().unwrap_or(f64::NAN)
}

pub(crate) fn f64_to_decimal(value: f64) -> Decimal128 {
    let text = if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 {
            "Infinity".to_string()
        } else {
            "-Infinity".to_string()
        }
    } else {
        format!("{value:e}")
    };
    text.parse::<Decimal128>()
        .unwrap_or_else(|_| Decimal128::from_bytes(NAN_DECIMAL_BYTES))
}

/// The little-endian bytes of a quiet decimal128 NaN.
const NAN_DECIMAL_BYTES: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7c];

/// Numeric order by value: NaN is below every other number and equal to itself.
pub(crate) fn compare_numbers(a: Number, b: Number) -> Ordering {
    match (a, b) {
        (Number::Int32(x), Number::Int32(y)) => x.cmp(&y),
        (Number::Int32(x), Number::Int64(y)) => i64::from(x).cmp(&y),
        (Number::Int64(x), Number::Int32(y)) => x.cmp(&i64::from(y)),
        (Number::Int64(x), Number::Int64(y)) => x.cmp(&y),
        (Number::Int32(x), other) => compare_int_float(i64::from(x), other.as_f64()),
        (Number::Int64(x), other) => compare_int_float(x, other.as_f64()),
        (other, Number::Int32(y)) => compare_int_float(i64::from(y), other.as_f64()).reverse(),
        (other, Number::Int64(y)) => compare_int_float(y, other.as_f64()).reverse(),
        (x, y) => compare_floats(x.as_f64(), y.as_f64()),
    }
}

fn compare_floats(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        // -0.0 == 0.0 here, as in MongoDB.
        (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// Exact comparison of an integer with a float (no rounding of the integer to f64).
fn compare_int_float(int: i64, float: f64) -> Ordering {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if float.is_nan() {
        return Ordering::Greater;
    }
    if float >= TWO_POW_63 {
        return Ordering::Less;
    }
    if float < -TWO_POW_63 {
        return Ordering::Greater;
    }
    let whole = float.trunc();
    let whole_int = whole as i64;
    match int.cmp(&whole_int) {
        Ordering::Equal => compare_floats(0.0, float - whole),
        unequal => unequal,
    }
}

/// `a + b` with MongoDB's promotion: int32 overflowing to int64, any double → double, any decimal → decimal.
pub(crate) fn add(a: Number, b: Number) -> Result<Number, ArithmeticError> {
    combine(a, b, i32::checked_add, i64::checked_add, |x, y| x + y)
}

/// `a * b` with the same promotion rules as [`add`].
pub(crate) fn multiply(a: Number, b: Number) -> Result<Number, ArithmeticError> {
    combine(a, b, i32::checked_mul, i64::checked_mul, |x, y| x * y)
}

/// `a - b` with the same promotion rules as [`add`].
pub(crate) fn subtract(a: Number, b: Number) -> Result<Number, ArithmeticError> {
    combine(a, b, i32::checked_sub, i64::checked_sub, |x, y| x - y)
}

fn combine(
    a: Number,
    b: Number,
    op32: fn(i32, i32) -> Option<i32>,
    op64: fn(i64, i64) -> Option<i64>,
    op_float: fn(f64, f64) -> f64,
) -> Result<Number, ArithmeticError> {
    use Number::{Decimal, Double, Int32, Int64};
    match (a, b) {
        (Decimal(_), _) | (_, Decimal(_)) => Ok(Decimal(op_float(a.as_f64(), b.as_f64()))),
        (Double(_), _) | (_, Double(_)) => Ok(Double(op_float(a.as_f64(), b.as_f64()))),
        (Int32(x), Int32(y)) => match op32(x, y) {
            Some(r) => Ok(Int32(r)),
            None => op64(i64::from(x), i64::from(y))
                .map(Int64)
                .ok_or(ArithmeticError::Overflow),
        },
        (x, y) => {
            let (x, y) = (x.as_exact_i64().unwrap_or(0), y.as_exact_i64().unwrap_or(0));
            op64(x, y).map(Int64).ok_or(ArithmeticError::Overflow)
        }
    }
}

/// The zero of a number's type (what `$mul` stores into a missing field).
pub(crate) fn zero_like(value: Number) -> Number {
    match value {
        Number::Int32(_) => Number::Int32(0),
        Number::Int64(_) => Number::Int64(0),
        Number::Double(_) => Number::Double(0.0),
        Number::Decimal(_) => Number::Decimal(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int32_overflow_promotes_to_int64() {
        let sum = add(Number::Int32(i32::MAX), Number::Int32(1));
        assert_eq!(sum, Ok(Number::Int64(i64::from(i32::MAX) + 1)));
    }

    #[test]
    fn int64_overflow_is_an_error() {
        assert_eq!(
            add(Number::Int64(i64::MAX), Number::Int32(1)),
            Err(ArithmeticError::Overflow)
        );
    }

    #[test]
    fn any_double_makes_a_double() {
        assert_eq!(add(Number::Int64(2), Number::Double(0.5)), Ok(Number::Double(2.5)));
    }

    #[test]
    fn int_float_comparison_is_exact() {
        let big = (1i64 << 53) + 1;
        assert_eq!(
            compare_numbers(Number::Int64(big), Number::Double((1i64 << 53) as f64)),
            Ordering::Greater
        );
        assert_eq!(
            compare_numbers(Number::Int64(i64::MAX), Number::Double(9.3e18)),
            Ordering::Less
        );
        assert_eq!(compare_numbers(Number::Int32(1), Number::Double(1.0)), Ordering::Equal);
        assert_eq!(
            compare_numbers(Number::Double(f64::NAN), Number::Int32(i32::MIN)),
            Ordering::Less
        );
        assert_eq!(compare_numbers(Number::Int32(-1), Number::Double(-0.5)), Ordering::Less);
    }

    #[test]
    fn decimal_round_trips_through_strings() {
        let d: Decimal128 = "2.5".parse().expect("valid decimal");
        assert_eq!(decimal_to_f64(&d), 2.5);
        assert_eq!(decimal_to_f64(&f64_to_decimal(1e300)), 1e300);
        assert!(decimal_to_f64(&f64_to_decimal(f64::NAN)).is_nan());
    }
}
