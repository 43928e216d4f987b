//! Id generation: CUID2 ids of the same shape as `createId()` from `@paralleldrive/cuid2`
//! (24 chars, lowercase `[a-z0-9]`, starting with a letter).

/// A fresh CUID2 id.
pub fn new_id() -> String {
    cuid2::create_id()
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
