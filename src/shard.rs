//! Sharding tenants across replicas: which replica polls which tenant.
//!
//! Every replica reads the same configuration and keeps the tenants whose shard is its
//! own index. The shard of a tenant depends only on its name and the shard count, so
//! replicas agree without talking to each other, and the choice must never change
//! between versions or platforms (a change would make two replicas poll one tenant, or
//! none, during a rolling upgrade). It is therefore spelled out here rather than taken
//! from `std`'s randomly keyed hasher:
//!
//! 1. the key is the 64-bit FNV-1a hash of the tenant name's UTF-8 bytes (offset basis
//!    `0xcbf29ce484222325`, prime `0x100000001b3`);
//! 2. the shard is Lamping and Veach's jump consistent hash of that key into `count`
//!    buckets ("A Fast, Minimal Memory, Consistent Hash Algorithm", 2014). Going from
//!    `n` to `n + 1` shards moves only about `1/(n+1)` of the tenants, all of them to
//!    the new shard.
//!
//! The arithmetic is integer wrapping multiplication plus IEEE-754 double division and
//! multiplication, which are exactly specified, so the result is the same everywhere.

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Jump consistent hash of `key` into `buckets` buckets (`0..buckets`); 0 when
/// `buckets` is 0 or 1.
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut chosen: i64 = 0;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        chosen = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let scale = (1u64 << 31) as f64 / ((key >> 33) + 1) as f64;
        next = ((chosen + 1) as f64 * scale) as i64;
    }
    u32::try_from(chosen).unwrap_or(0)
}

/// The shard (`0..count`) that polls the tenant called `name`.
pub fn shard_of(name: &str, count: u32) -> u32 {
    jump(fnv1a64(name.as_bytes()), count)
}

/// The ordinal of a StatefulSet pod name: `sailpoint-task-exporter-3` → 3. `None` when
/// the name does not end in `-` and decimal digits.
pub fn ordinal(hostname: &str) -> Option<u32> {
    let (_, digits) = hostname.trim().rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Pinned values: if any of these change, replicas of different versions would
    /// disagree on who polls which tenant.
    #[test]
    fn shards_are_pinned() {
        assert_eq!(jump(0, 1), 0);
        assert_eq!(jump(12345, 0), 0);
        // Published vectors of the reference algorithm.
        assert_eq!(jump(256, 1024), 520);
        assert_eq!(jump(10_863_919_174_838_991, 11), 6);
        assert_eq!(jump(2_016_238_256_797_177_309, 11), 3);
        let pinned: Vec<u32> = ["acme", "acme-sandbox", "t1", "t2", "t200", "globex"]
            .iter()
            .map(|n| shard_of(n, 7))
            .collect();
        assert_eq!(pinned, PINNED_7);
    }

    const PINNED_7: [u32; 6] = [5, 2, 6, 5, 3, 1];

    #[test]
    fn every_tenant_has_exactly_one_shard_and_shards_are_balanced() {
        let names: Vec<String> = (1..=200).map(|k| format!("t{k}")).collect();
        for count in 1..=8u32 {
            let mut sizes = vec![0usize; count as usize];
            for name in &names {
                let owners: Vec<u32> = (0..count)
                    .filter(|index| shard_of(name, count) == *index)
                    .collect();
                assert_eq!(owners.len(), 1, "{name} of {count}");
                sizes[shard_of(name, count) as usize] += 1;
            }
            let fair = 200 / count as usize;
            assert!(
                sizes.iter().all(|s| *s >= fair / 2 && *s <= fair * 2),
                "{count} shards: {sizes:?}"
            );
        }
    }

    #[test]
    fn one_more_shard_moves_tenants_only_to_the_new_shard() {
        let names: Vec<String> = (1..=500).map(|k| format!("tenant-{k}")).collect();
        for count in 1..=6u32 {
            let mut moved = 0;
            for name in &names {
                let (before, after) = (shard_of(name, count), shard_of(name, count + 1));
                if before != after {
                    assert_eq!(after, count, "{name} moved between old shards");
                    moved += 1;
                }
            }
            assert!(
                moved > 0 && moved < names.len() / count as usize,
                "{count}: {moved}"
            );
        }
    }

    #[test]
    fn ordinals_of_pod_names() {
        assert_eq!(ordinal("sailpoint-task-exporter-0"), Some(0));
        assert_eq!(ordinal("sailpoint-task-exporter-12\n"), Some(12));
        for bad in [
            "exporter",
            "exporter-",
            "exporter-x1",
            "exporter-1a",
            "",
            "-",
        ] {
            assert_eq!(ordinal(bad), None, "{bad}");
        }
        assert_eq!(ordinal("x-99999999999"), None);
    }
}
