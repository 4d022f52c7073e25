//! Segment format: round trips, every kind of damage, and pinned encodings.

use std::path::PathBuf;

use bytes::Bytes;
use fjord_storage::segment::{FORMAT_VERSION, HEADER_LEN, TRAILER_LEN};
use fjord_storage::{
    ChunkMeta, Codec, Compression, DecodedSegment, EncodedSegment, ErrorKind, SegmentFooter,
    SegmentWriter, TailDecode, WriterOptions, decode_chunk, decode_chunk_with_entry,
    decode_segment,
};
use proptest::prelude::*;
use ulid::Ulid;
use uuid::Uuid;

// ---- helpers ----

fn meta(topic: u128, partition: i32, first_offset: i64, records: u32) -> ChunkMeta {
    ChunkMeta {
        topic_id: Uuid::from_u128(topic),
        partition,
        first_offset,
        last_offset: first_offset + i64::from(records.max(1)) - 1,
        record_count: records,
        max_timestamp: 1_700_000_000_000 + i64::from(partition),
    }
}

fn build(compression: Compression, chunks: &[(ChunkMeta, Bytes)]) -> EncodedSegment {
    let mut writer = SegmentWriter::new(
        Ulid::from_parts(1_700_000_000_000, 0xfeed),
        WriterOptions { compression },
    )
    .expect("valid options");
    for (meta, batches) in chunks {
        writer
            .add_chunk(*meta, batches.clone())
            .expect("valid chunk");
    }
    writer.finish().expect("valid segment")
}

/// A small object with a zstd chunk and a stored (incompressible) chunk.
fn small_object() -> (EncodedSegment, Vec<(ChunkMeta, Bytes)>) {
    let chunks = vec![
        (meta(1, 0, 10, 3), Bytes::from(b"{\"k\":\"v\"}".repeat(12))),
        (meta(1, 1, 0, 1), Bytes::from_static(b"\x17\x42\x99")),
        (meta(2, 0, 5, 2), Bytes::from(b"abcabcabc".repeat(8))),
    ];
    let segment = build(Compression::Zstd { level: 3 }, &chunks);
    let codecs: Vec<Codec> = segment.footer.entries().iter().map(|e| e.codec).collect();
    assert_eq!(codecs, [Codec::Zstd, Codec::None, Codec::Zstd]);
    (segment, chunks)
}

/// Reads an object the way the read path does: the tail (shortest first, growing as
/// told), then each chunk by its byte range. Returns every chunk's batches.
fn read_by_ranges(
    object: &Bytes,
    first_tail_len: u64,
) -> fjord_storage::Result<(SegmentFooter, Vec<Bytes>)> {
    let object_len = object.len() as u64;
    let mut tail_len = first_tail_len.min(object_len);
    let footer = loop {
        let tail = &object[(object_len - tail_len) as usize..];
        match SegmentFooter::decode_tail(tail, object_len)? {
            TailDecode::Footer(footer) => break footer,
            TailDecode::NeedLongerTail { tail_len: needed } => {
                assert!(needed > tail_len, "asked for {needed} after {tail_len}");
                assert!(needed <= object_len);
                tail_len = needed;
            }
        }
    };
    let mut chunks = Vec::new();
    for entry in footer.entries() {
        let range = entry.byte_range();
        let bytes = object.slice(range.start as usize..range.end as usize);
        chunks.push(decode_chunk_with_entry(entry, bytes)?);
    }
    Ok((footer, chunks))
}

fn expected_chunks(chunks: &[(ChunkMeta, Bytes)]) -> Vec<(ChunkMeta, Bytes)> {
    let mut sorted = chunks.to_vec();
    sorted.sort_by_key(|(m, _)| (m.topic_id, m.partition, m.first_offset));
    sorted
}

fn decoded_pairs(decoded: &DecodedSegment) -> Vec<(ChunkMeta, Bytes)> {
    decoded
        .footer
        .entries()
        .iter()
        .map(|e| e.meta)
        .zip(decoded.chunks.iter().cloned())
        .collect()
}

// ---- round trips ----

fn arb_batches() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        // random: incompressible, stored as given
        prop::collection::vec(any::<u8>(), 1..2048),
        // repetitive: compresses well
        (prop::collection::vec(any::<u8>(), 1..16), 1usize..300)
            .prop_map(|(unit, times)| unit.repeat(times)),
    ]
    .prop_map(Bytes::from)
}

/// Chunks for distinct partitions (plus, sometimes, a second later chunk of one).
fn arb_chunks() -> impl Strategy<Value = Vec<(ChunkMeta, Bytes)>> {
    prop::collection::btree_map(
        (0u128..4, 0i32..64),
        (0i64..1 << 40, 0u32..500, any::<i64>(), arb_batches()),
        1..10,
    )
    .prop_flat_map(|partitions| {
        let chunks: Vec<(ChunkMeta, Bytes)> = partitions
            .into_iter()
            .map(|((topic, partition), (first, records, max_ts, batches))| {
                let mut meta = meta(topic, partition, first, records);
                meta.max_timestamp = max_ts;
                (meta, batches)
            })
            .collect();
        let len = chunks.len();
        (Just(chunks), any::<bool>(), 0..len, arb_batches())
    })
    .prop_map(|(mut chunks, add_second, which, batches)| {
        if add_second {
            let (first, _) = chunks[which];
            let mut second = first;
            second.first_offset = first.last_offset + 1 + 10;
            second.last_offset = second.first_offset + 4;
            second.record_count = 5;
            chunks.push((second, batches));
        }
        chunks
    })
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        (1i32..=3).prop_map(|level| Compression::Zstd { level }),
        Just(Compression::Zstd { level: -5 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn round_trip(chunks in arb_chunks(), compression in arb_compression(), tail_len in 0u64..2048) {
        let segment = build(compression, &chunks);
        let expected = expected_chunks(&chunks);

        // whole object
        let decoded = decode_segment(segment.bytes.clone()).unwrap();
        prop_assert_eq!(&decoded.footer, &segment.footer);
        prop_assert_eq!(decoded_pairs(&decoded), expected.clone());

        // ranged reads, starting from a tail of any length
        let (footer, batches) = read_by_ranges(&segment.bytes, tail_len).unwrap();
        prop_assert_eq!(&footer, &segment.footer);
        prop_assert_eq!(footer.object_len(), segment.bytes.len() as u64);
        prop_assert_eq!(footer.format_version(), FORMAT_VERSION);
        prop_assert_eq!(batches, decoded.chunks.clone());

        // each chunk alone, as a metadata index entry would fetch it
        for (entry, (meta, batches)) in footer.entries().iter().zip(&expected) {
            let range = entry.byte_range();
            let chunk = decode_chunk(segment.bytes.slice(range.start as usize..range.end as usize)).unwrap();
            prop_assert_eq!(&chunk.meta, meta);
            prop_assert_eq!(chunk.codec, entry.codec);
            prop_assert_eq!(&chunk.batches, batches);
            if compression == Compression::None {
                prop_assert_eq!(entry.codec, Codec::None);
            }
        }

        // lookups
        for (meta, _) in &expected {
            let found = footer.find(meta.topic_id, meta.partition, meta.first_offset).unwrap();
            prop_assert_eq!(&found.meta, meta);
            let found = footer.find(meta.topic_id, meta.partition, meta.last_offset).unwrap();
            prop_assert_eq!(&found.meta, meta);
            prop_assert!(footer.chunks_of(meta.topic_id, meta.partition).contains(found));
        }
        prop_assert!(footer.chunks_of(Uuid::from_u128(99), 0).is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), claimed_len in 0u64..1024) {
        let bytes = Bytes::from(bytes);
        let _ = decode_segment(bytes.clone());
        let _ = decode_chunk(bytes.clone());
        let _ = SegmentFooter::decode_tail(&bytes, claimed_len);
        let _ = SegmentFooter::decode_tail(&bytes, bytes.len() as u64);
    }

    /// Garbage behind a valid trailer (so the checks past the trailer run too).
    #[test]
    fn garbage_footer_behind_valid_trailer_never_panics(seed_object in arb_chunks(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let segment = build(Compression::Zstd { level: 1 }, &seed_object);
        let mut bytes = segment.bytes.to_vec();
        let len = bytes.len();
        for (index, value) in flips {
            let i = index.index(len);
            bytes[i] ^= value | 1;
        }
        let bytes = Bytes::from(bytes);
        if let Ok(decoded) = decode_segment(bytes.clone()) {
            prop_assert_eq!(decoded_pairs(&decoded), expected_chunks(&seed_object));
        }
        let _ = read_by_ranges(&bytes, 64);
    }
}

#[test]
fn a_footer_longer_than_the_first_tail_takes_a_second_read() {
    let chunks: Vec<_> = (0..50)
        .map(|p| (meta(1, p, 0, 1), Bytes::from(vec![p as u8; 10])))
        .collect();
    let segment = build(Compression::None, &chunks);
    let object_len = segment.bytes.len() as u64;
    let tail = &segment.bytes[segment.bytes.len() - 100..];
    let TailDecode::NeedLongerTail { tail_len } =
        SegmentFooter::decode_tail(tail, object_len).unwrap()
    else {
        panic!("a 50-entry footer does not fit in 100 bytes");
    };
    assert_eq!(tail_len, 24 + 50 * 80 + TRAILER_LEN);
    let tail = &segment.bytes[(object_len - tail_len) as usize..];
    assert!(matches!(
        SegmentFooter::decode_tail(tail, object_len).unwrap(),
        TailDecode::Footer(footer) if footer == segment.footer
    ));
    // Fewer bytes than a trailer: ask for the trailer.
    assert_eq!(
        SegmentFooter::decode_tail(&tail[tail.len() - 3..], object_len).unwrap(),
        TailDecode::NeedLongerTail {
            tail_len: TRAILER_LEN
        }
    );
}

// ---- damage ----

#[test]
fn every_flipped_byte_is_detected() {
    let (segment, chunks) = small_object();
    let expected = expected_chunks(&chunks);
    let original = segment.bytes.to_vec();
    for position in 0..original.len() {
        for mask in [0x01u8, 0x10, 0x80, 0xff] {
            let mut damaged = original.clone();
            damaged[position] ^= mask;
            let damaged = Bytes::from(damaged);

            // The whole-object decode checks every byte, so any change is an error.
            let error = decode_segment(damaged.clone())
                .expect_err(&format!("flip {mask:#04x} at {position} went unnoticed"));
            assert!(
                matches!(error.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported),
                "flip at {position}: {error}"
            );

            // The ranged-read path skips the header, so a damaged header may pass;
            // anything it does return must be the original data.
            match read_by_ranges(&damaged, 64) {
                Ok((footer, batches)) => {
                    assert!(position < HEADER_LEN as usize, "flip at {position} passed");
                    let pairs: Vec<_> = footer
                        .entries()
                        .iter()
                        .map(|e| e.meta)
                        .zip(batches)
                        .collect();
                    assert_eq!(pairs, expected);
                }
                Err(error) => assert!(
                    matches!(error.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported),
                    "flip at {position}: {error}"
                ),
            }

            // Every chunk read alone (the metadata index path) is checked too.
            for entry in segment.footer.entries() {
                let range = entry.byte_range();
                let chunk = damaged.slice(range.start as usize..range.end as usize);
                let touched = range.contains(&(position as u64));
                let alone = decode_chunk(chunk.clone());
                let with_entry = decode_chunk_with_entry(entry, chunk);
                assert_eq!(
                    alone.is_err(),
                    touched,
                    "chunk {range:?}, flip at {position}"
                );
                assert_eq!(
                    with_entry.is_err(),
                    touched,
                    "chunk {range:?}, flip at {position}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let (segment, _) = small_object();
    let object = &segment.bytes;
    for len in 0..object.len() {
        let truncated = object.slice(..len);
        let error = decode_segment(truncated.clone()).expect_err(&format!("length {len}"));
        assert_eq!(error.kind(), ErrorKind::Corrupt, "length {len}: {error}");
        // A reader told the object's (wrong, shortened) length must not accept it.
        let error = SegmentFooter::decode_tail(&truncated, len as u64)
            .expect_err(&format!("tail of length {len}"));
        assert_eq!(error.kind(), ErrorKind::Corrupt, "length {len}: {error}");
        // A tail cut from the front is just a shorter tail: never an error.
        let tail = object.slice(object.len() - len..);
        assert!(SegmentFooter::decode_tail(&tail, object.len() as u64).is_ok());
    }
    for entry in segment.footer.entries() {
        let range = entry.byte_range();
        for end in range.start..range.end {
            let chunk = object.slice(range.start as usize..end as usize);
            assert_eq!(
                decode_chunk(chunk.clone()).unwrap_err().kind(),
                ErrorKind::Corrupt
            );
            assert_eq!(
                decode_chunk_with_entry(entry, chunk).unwrap_err().kind(),
                ErrorKind::Corrupt
            );
        }
    }
}

#[test]
fn appended_bytes_are_detected() {
    let (segment, _) = small_object();
    let mut longer = segment.bytes.to_vec();
    longer.extend_from_slice(b"junk");
    let error = decode_segment(Bytes::from(longer)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
}

#[test]
fn a_tail_longer_than_the_object_is_invalid() {
    let (segment, _) = small_object();
    let error =
        SegmentFooter::decode_tail(&segment.bytes, segment.bytes.len() as u64 - 1).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
}

#[test]
fn the_wrong_chunk_for_an_entry_is_detected() {
    let (segment, _) = small_object();
    let entries = segment.footer.entries();
    let range = entries[2].byte_range();
    let other_chunk = segment
        .bytes
        .slice(range.start as usize..range.end as usize);
    let mut entry = entries[0];
    entry.byte_length = entries[2].byte_length;
    let error = decode_chunk_with_entry(&entry, other_chunk).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt);
    assert!(
        error.to_string().contains("does not match its index entry"),
        "{error}"
    );
}

fn patched(object: &Bytes, at: usize, bytes: &[u8]) -> Bytes {
    let mut copy = object.to_vec();
    copy[at..at + bytes.len()].copy_from_slice(bytes);
    Bytes::from(copy)
}

#[test]
fn unknown_versions_are_unsupported() {
    let (segment, _) = small_object();
    let object = &segment.bytes;
    let len = object.len();
    let next = (FORMAT_VERSION + 1).to_le_bytes();

    let in_header = patched(object, 4, &next);
    let error = decode_segment(in_header).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(
        error
            .to_string()
            .contains("segment header has segment format version 2"),
        "{error}"
    );

    let in_trailer = patched(object, len - 6, &next);
    let error = decode_segment(in_trailer.clone()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    let error = SegmentFooter::decode_tail(&in_trailer, len as u64).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(
        error
            .to_string()
            .contains("trailer has segment format version 2"),
        "{error}"
    );

    let zero = patched(object, len - 6, &0u16.to_le_bytes());
    assert_eq!(
        decode_segment(zero).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn wrong_magic_is_corrupt() {
    let (segment, _) = small_object();
    let object = &segment.bytes;
    let len = object.len();
    for (at, what) in [(0, "segment header"), (len - 4, "segment trailer")] {
        let damaged = patched(object, at, b"PAR1");
        let error = decode_segment(damaged).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Corrupt);
        assert!(
            error
                .to_string()
                .contains(&format!("bad magic number in {what}: found \"PAR1\"")),
            "{error}"
        );
    }
    let chunk_at = segment.footer.entries()[1].byte_offset as usize;
    let error = decode_segment(patched(object, chunk_at, b"XXXX")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("bad magic number in chunk header"),
        "{error}"
    );
}

#[test]
fn not_a_segment_at_all() {
    for bytes in [
        &b""[..],
        b"FJSG",
        b"PAR1 this is a parquet file, not a segment PAR1",
    ] {
        let error = decode_segment(Bytes::copy_from_slice(bytes)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    }
    let _ = HEADER_LEN;
}

// ---- pinned encodings ----

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The chunks of the pinned fixtures.
fn fixture_chunks() -> Vec<(ChunkMeta, Bytes)> {
    vec![
        (
            ChunkMeta {
                topic_id: Uuid::from_u128(0x1f2e_3d4c_5b6a_7988_9706_a5b4_c3d2_e1f0),
                partition: 0,
                first_offset: 1000,
                last_offset: 1009,
                record_count: 10,
                max_timestamp: 1_700_000_000_999,
            },
            Bytes::from(b"{\"user\":\"fjord\",\"n\":1}".repeat(10)),
        ),
        (
            ChunkMeta {
                topic_id: Uuid::from_u128(0x1f2e_3d4c_5b6a_7988_9706_a5b4_c3d2_e1f0),
                partition: 3,
                first_offset: 0,
                last_offset: 4,
                record_count: 3,
                max_timestamp: -1,
            },
            Bytes::from_static(b"\x00\x01\x02\x03 already compressed"),
        ),
    ]
}

/// Objects written by earlier builds must stay readable: these files were written
/// by format version 1 and are never regenerated (set `FJORD_WRITE_FIXTURES=1` only
/// to create a fixture that does not exist yet).
#[test]
fn version_1_fixtures_still_decode() {
    for (name, compression) in [
        ("segment-v1-zstd.seg", Compression::Zstd { level: 3 }),
        ("segment-v1-plain.seg", Compression::None),
    ] {
        let path = fixture_path(name);
        if std::env::var_os("FJORD_WRITE_FIXTURES").is_some() && !path.exists() {
            let segment = build(compression, &fixture_chunks());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &segment.bytes).unwrap();
        }
        let bytes = Bytes::from(std::fs::read(&path).unwrap());
        let decoded = decode_segment(bytes.clone()).unwrap();
        assert_eq!(decoded.footer.format_version(), 1);
        assert_eq!(
            decoded.footer.segment_id(),
            Ulid::from_parts(1_700_000_000_000, 0xfeed)
        );
        assert_eq!(decoded_pairs(&decoded), fixture_chunks(), "{name}");

        // Without compression the encoding is fully determined by this crate: the
        // writer must still produce exactly these bytes.
        if compression == Compression::None {
            assert_eq!(build(compression, &fixture_chunks()).bytes, bytes, "{name}");
        }
    }
}

// ---- compaction: chunks copied as stored ----

/// The chunks of `segment`, as stored, in footer order.
fn stored_chunks(segment: &EncodedSegment) -> Vec<fjord_storage::StoredChunk> {
    segment
        .footer
        .entries()
        .iter()
        .map(|entry| {
            let range = entry.byte_range();
            fjord_storage::stored_chunk(
                segment
                    .bytes
                    .slice(range.start as usize..range.end as usize),
            )
            .expect("a sound chunk")
        })
        .collect()
}

#[test]
fn stored_chunks_of_one_partition_merge_into_one_chunk_without_recompression() {
    // Three flushes of partition (1, 0), of both codecs, and one of (1, 1).
    let flushes = [
        vec![
            (meta(1, 0, 0, 4), Bytes::from(b"aaaa".repeat(100))),
            (meta(1, 1, 0, 1), Bytes::from_static(b"\x01\x02")),
        ],
        vec![(meta(1, 0, 4, 2), Bytes::from(b"bbbbbb".repeat(50)))],
        vec![(meta(1, 0, 6, 3), Bytes::from(b"cc".repeat(300)))],
        vec![(meta(1, 0, 9, 1), Bytes::from_static(b"\x99\x17\x42"))],
    ];
    let objects: Vec<EncodedSegment> = flushes
        .iter()
        .map(|chunks| build(Compression::Zstd { level: 3 }, chunks))
        .collect();
    let mut of_partition: Vec<fjord_storage::StoredChunk> = objects
        .iter()
        .flat_map(stored_chunks)
        .filter(|c| c.meta.partition == 0)
        .collect();
    assert_eq!(of_partition.len(), 4);
    let raw = of_partition.pop().expect("four chunks");
    assert_eq!(raw.codec, Codec::None);
    let zstd_payloads: Vec<Bytes> = of_partition.iter().map(|c| c.payload.clone()).collect();

    let mut writer = SegmentWriter::new(
        Ulid::from_parts(1_700_000_000_000, 7),
        WriterOptions::zstd(3),
    )
    .expect("options");
    writer
        .add_stored(of_partition)
        .expect("consecutive zstd chunks");
    writer.add_stored(vec![raw]).expect("one raw chunk");
    let merged = writer.finish().expect("an object");
    let entries = merged.footer.entries();
    assert_eq!(entries.len(), 2);
    let first = entries[0];
    assert_eq!(
        (
            first.meta.first_offset,
            first.meta.last_offset,
            first.meta.record_count
        ),
        (0, 8, 9)
    );
    assert_eq!(first.codec, Codec::Zstd);
    // The payload is the three zstd payloads, byte for byte.
    let stored = &stored_chunks(&merged)[0];
    assert_eq!(stored.payload, zstd_payloads.concat());
    // And it reads back as the batches of the three flushes in order.
    let decoded = decode_segment(merged.bytes.clone()).expect("a sound object");
    let expected = [b"aaaa".repeat(100), b"bbbbbb".repeat(50), b"cc".repeat(300)].concat();
    assert_eq!(decoded.chunks[0], Bytes::from(expected));
    assert_eq!(decoded.chunks[1], Bytes::from_static(b"\x99\x17\x42"));
}

#[test]
fn stored_chunks_that_do_not_follow_each_other_are_refused() {
    let object = build(
        Compression::Zstd { level: 3 },
        &[
            (meta(1, 0, 0, 4), Bytes::from(b"aaaa".repeat(100))),
            (meta(1, 0, 10, 2), Bytes::from(b"bbbb".repeat(100))),
            (meta(1, 1, 4, 2), Bytes::from(b"cccc".repeat(100))),
            (meta(1, 2, 4, 1), Bytes::from_static(b"\x99\x17\x42")),
        ],
    );
    let chunks = stored_chunks(&object);
    let mut writer = SegmentWriter::new(
        Ulid::from_parts(1_700_000_000_000, 7),
        WriterOptions::zstd(3),
    )
    .expect("options");
    // A gap in offsets.
    let gap = writer.add_stored(vec![chunks[0].clone(), chunks[1].clone()]);
    assert_eq!(gap.expect_err("a gap").kind(), ErrorKind::Invalid);
    // Another partition, at the right offset.
    let other = writer.add_stored(vec![chunks[0].clone(), chunks[2].clone()]);
    assert_eq!(
        other.expect_err("two partitions").kind(),
        ErrorKind::Invalid
    );
    // Nothing.
    assert!(writer.add_stored(Vec::new()).is_err());
    assert_eq!(writer.chunk_count(), 0);
}

#[test]
fn a_damaged_stored_chunk_is_not_copied() {
    let object = build(
        Compression::Zstd { level: 3 },
        &[(meta(1, 0, 0, 4), Bytes::from(b"aaaa".repeat(100)))],
    );
    let range = object.footer.entries()[0].byte_range();
    let chunk = object.bytes.slice(range.start as usize..range.end as usize);
    for at in [0, 30, CHUNK_HEADER_LEN_USIZE, chunk.len() - 1] {
        let mut damaged = chunk.to_vec();
        damaged[at] ^= 0x10;
        let error = fjord_storage::stored_chunk(Bytes::from(damaged)).expect_err("damage");
        assert_eq!(error.kind(), ErrorKind::Corrupt, "byte {at}");
    }
}

const CHUNK_HEADER_LEN_USIZE: usize = fjord_storage::segment::CHUNK_HEADER_LEN as usize;
