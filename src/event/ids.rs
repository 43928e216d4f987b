//! Id generation: CUID2 ids of the same shape as `createId()` from `@paralleldrive/cuid2`
//! (24 chars, lowercase `[a-z0-9]`, starting with a letter).

/// A fresh CUID2 id.
pub fn new_id() -> String {
    cuid2::create_id()
}

/// A fresh row id (`event_metadata.id`): CUID2's shape (24 chars of `[a-z0-9]`, a letter
/// first): `c`, the Unix time in ms as 9 base-36 digits, then 14 random ones from the thread's
/// CSPRNG (72 bits, unique within a millisecond). The row id only has to be unique and is never
/// read, so it skips CUID2's SHA3 and base-36 bignum (1.55 us per id here, most of the Tokio
/// worker's own samples in batches: perf), and the time prefix makes primary-key inserts land at
/// the index's right edge instead of on random leaf pages (as cuid v1 did for Prisma).
pub fn new_row_id() -> String {
    use rand::RngExt;
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let mut id = String::with_capacity(24);
    id.push('c');
    let mut ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut t = [0u8; 9];
    for d in t.iter_mut().rev() {
        *d = DIGITS[(ms % 36) as usize];
        ms /= 36;
    }
    id.extend(t.iter().map(|&b| char::from(b)));
    for _ in 0..14 {
        id.push(char::from(DIGITS[rng.random_range(0..36)]));
    }
    id
}

/// Whether `id` has the shape of a CUID2 id as `createId()` makes it.
#[cfg(test)]
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
        // The random part takes every digit in every position (a constant column would show).
        for pos in 10..24 {
            let seen: HashSet<u8> = rows.iter().map(|r| r.as_bytes()[pos]).collect();
            assert_eq!(seen.len(), 36, "position {pos}");
        }
        // Ordered by time: an id made later sorts after (the prefix is the ms).
        let first = new_row_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_row_id()[..10] > first[..10]);
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
