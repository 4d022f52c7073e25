//! Kafka's default partitioner for keyed records: `murmur2(key) & 0x7fffffff`
//! modulo the partition count, so a key lands where the Java client (and
//! librdkafka's `murmur2_random`, kafka-python, kafkajs' default) puts it.
//!
//! Hand-written because it is Kafka's own variant of MurmurHash2 (seed
//! `0x9747b28c`, little-endian words, signed Java arithmetic) that the general
//! murmur crates do not reproduce bit for bit; the test vectors are those of
//! Kafka's `UtilsTest.testMurmur2`.

/// Kafka's `Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java's `int` length: keys are far below 2^31 bytes (bounded by the body
    // limit), and Kafka truncates the same way.
    let mut h: u32 = SEED ^ (length as u32);
    let mut words = data.chunks_exact(4);
    for word in words.by_ref() {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        if rest.len() >= 3 {
            h ^= u32::from(rest[2]) << 16;
        }
        if rest.len() >= 2 {
            h ^= u32::from(rest[1]) << 8;
        }
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `partition_count` (which must be
/// positive).
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partition_count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafkas_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in cases {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_are_in_range() {
        for key in [&b""[..], b"x", b"foobar", b"\xff\xff\xff\xff\xff"] {
            let p = partition_for_key(key, 7);
            assert!((0..7).contains(&p));
        }
    }
}
