//! BSON value helpers below every layer: reading numbers and truthiness with MongoDB's type rules.
//!
//! The command layer reads its arguments with these, and so do the replica-set messages, write concerns and
//! fail point settings; none of them depends on another for it.

use bson::Bson;

/// An integral number of any BSON numeric type (a double only when it has no fraction).
pub fn as_i64(value: &Bson) -> Option<i64> {
    match value {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 && v.is_finite() => Some(*v as i64),
        _ => None,
    }
}

/// Truthiness as MongoDB reads boolean options: booleans, and numbers other than 0.
pub fn truthy(value: &Bson) -> bool {
    match value {
        Bson::Boolean(b) => *b,
        Bson::Null => false,
        other => as_i64(other).map(|n| n != 0).unwrap_or(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers_of_every_type_read_as_i64() {
        assert_eq!(as_i64(&Bson::Int32(-3)), Some(-3));
        assert_eq!(as_i64(&Bson::Int64(1 << 40)), Some(1 << 40));
        assert_eq!(as_i64(&Bson::Double(7.0)), Some(7));
        assert_eq!(as_i64(&Bson::Double(7.5)), None);
        assert_eq!(as_i64(&Bson::Double(f64::NAN)), None);
        assert_eq!(as_i64(&Bson::String("7".into())), None);
    }

    #[test]
    fn truthiness_follows_mongodb() {
        assert!(truthy(&Bson::Boolean(true)));
        assert!(!truthy(&Bson::Int32(0)));
        assert!(truthy(&Bson::Double(2.0)));
        assert!(!truthy(&Bson::Null));
        assert!(truthy(&Bson::String(String::new())));
    }
}
