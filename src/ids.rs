//! Id generation: CUID2 ids of the same shape as `createId()` from `@paralleldrive/cuid2`
//! (24 chars, lowercase `[a-z0-9]`, starting with a letter).

/// A fresh CUID2 id.
pub fn new_id() -> String {
    cuid2::create_id()
}

/// A fresh row id (`event_metadata.id`): CUID2's shape, a letter then 23 of `[a-z0-9]`, drawn
/// from the thread's CSPRNG. The row id only has to be unique and is never read, so it skips
/// CUID2's SHA3 and base-36 bignum, which cost 1.55 us per id here (one of three ids per event;
/// in batches the ids were most of the Tokio worker's own CPU, perf).
pub fn new_row_id() -> String {
    use rand::RngExt;
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(24);
    id.push(char::from(DIGITS[rng.random_range(10..36)]));
    for _ in 0..23 {
        id.push(char::from(DIGITS[rng.random_range(0..36)]));
    }
    id
}

/// Whether `id` has the shape of a CUID2 id as `createId()` makes it.
pub fn is_cuid2_shape(id: &str) -> bool {
    id.len() == 24
        && id.as_bytes()[0].is_ascii_lowercase()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_cuid2_shape_and_are_unique() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        let rows: HashSet<String> = (0..10_000).map(|_| new_row_id()).collect();
        assert_eq!(rows.len(), 10_000);
        for id in &rows {
            assert!(is_cuid2_shape(id), "bad row id {id}");
        }
        // Every position takes every digit it may (a constant or skewed column would show).
        for pos in 0..24 {
            let seen: HashSet<u8> = rows.iter().map(|r| r.as_bytes()[pos]).collect();
            assert_eq!(seen.len(), if pos == 0 { 26 } else { 36 }, "position {pos}");
        }
        for id in &ids {
            assert!(is_cuid2_shape(id), "bad id {id}");
        }
    }

    #[test]
    fn shape_check_rejects_others() {
        assert!(!is_cuid2_shape("1abcdefghijklmnopqrstuvw"));
        assert!(!is_cuid2_shape("Abcdefghijklmnopqrstuvwx"));
        assert!(!is_cuid2_shape("abc"));
    }
}
