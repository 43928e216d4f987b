//! The names of the keys the append script touches besides the stream (dedup keys and group
//! tokens), built so that each hashes to the stream's Redis Cluster slot: a script may only touch
//! keys of one slot, and a cluster refuses it with CROSSSLOT otherwise.

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The part of `key` that Redis hashes: the content of the first `{…}` when it is not empty,
/// else the whole key (Redis's hash-tag rule, `keyHashSlot` in cluster.c).
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The cluster slot of `key`, as `CLUSTER KEYSLOT` computes it (CRC16/XMODEM of the hash tag).
pub fn slot(key: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key).as_bytes()) % SLOTS
}

/// The prefix of the stream's dedup keys (`<prefix><eventId>`) and group tokens
/// (`<prefix>g:<token>`); every key so built hashes to the stream's slot, and the stream's own
/// name is part of it, so two streams never share a key.
///
/// - A name without braces keeps the form `{<stream>}:dedup:` (unchanged from earlier versions,
///   so dedup keys written before an upgrade are still found).
/// - A name with a hash tag (`orders:{t1}`) starts the prefix: `orders:{t1}:dedup:` hashes `t1`.
/// - A name that has braces but no hash tag (`{}x`, `a}b`) is hashed whole by Redis and cannot be
///   put inside braces; its prefix gets a tag found to hash to the same slot:
///   `{s<n>}:<stream>:dedup:` with the smallest such `n`.
pub fn key_prefix(stream: &str) -> String {
    if !stream.contains('{') && !stream.contains('}') {
        return format!("{{{stream}}}:dedup:");
    }
    if hash_tag(stream) != stream {
        return format!("{stream}:dedup:");
    }
    // `a{b` has no closing brace after its '{', so `{a{b}` would still hash `a{b`.
    if !stream.contains('}') {
        return format!("{{{stream}}}:dedup:");
    }
    let want = slot(stream);
    // CRC16 spreads over all 16384 slots, so a match comes within some 10^5 tries (< 1 ms).
    let n = (0u32..)
        .find(|n| slot(&format!("s{n}")) == want)
        .expect("every slot has a short tag");
    format!("{{s{n}}}:{stream}:dedup:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tags_follow_redis() {
        assert_eq!(hash_tag("hyvve:events:main"), "hyvve:events:main");
        assert_eq!(hash_tag("orders:{t1}"), "t1");
        assert_eq!(hash_tag("{t1}:orders"), "t1");
        assert_eq!(hash_tag("{}x"), "{}x");
        assert_eq!(hash_tag("a{b"), "a{b");
        assert_eq!(hash_tag("a}b{c}"), "c");
        assert_eq!(hash_tag("{{a}}"), "{a");
        assert_eq!(hash_tag("x{}{y}"), "x{}{y}");
        assert_eq!(hash_tag("{a}{b}"), "a");
    }

    #[test]
    fn slots_match_cluster_keyslot() {
        // Values from CLUSTER KEYSLOT on Redis 7.0.15.
        assert_eq!(slot("hyvve:events:main"), 6088);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot(""), 0);
    }

    #[test]
    fn every_key_lands_in_the_streams_slot() {
        for stream in [
            "hyvve:events:main",
            "orders:{t1}",
            "{t1}orders",
            "{}x",
            "a{b",
            "a}b",
            "{{a}}",
            "x{}{y}",
            "}{",
            "{}",
        ] {
            let prefix = key_prefix(stream);
            let want = slot(stream);
            for suffix in ["ev-1", "g:abc", "{x}", "}"] {
                let key = format!("{prefix}{suffix}");
                assert_eq!(slot(&key), want, "{key} vs {stream}");
            }
            assert!(prefix.contains(stream), "{prefix} names {stream}");
        }
    }

    #[test]
    fn plain_names_keep_their_old_prefix() {
        assert_eq!(
            key_prefix("hyvve:events:main"),
            "{hyvve:events:main}:dedup:"
        );
        assert_eq!(key_prefix("orders:{t1}"), "orders:{t1}:dedup:");
        assert_ne!(key_prefix("a:{t1}"), key_prefix("b:{t1}"));
    }
}
