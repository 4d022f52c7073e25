use super::*;

fn payload(sequence: u64, len: usize) -> Bytes {
    let mut bytes = sequence.to_le_bytes().to_vec();
    bytes.extend((0..len).map(|i| (sequence as usize * 31 + i) as u8));
    Bytes::from(bytes)
}

fn small_files() -> WalOptions {
    WalOptions {
        file_bytes: 4096,
        ..WalOptions::default()
    }
}

#[tokio::test]
async fn appends_are_recovered_in_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovery) = Wal::open(dir.path(), small_files()).unwrap();
    assert!(recovery.records.is_empty());
    for expected in 1..=100u64 {
        let sequence = wal.append(payload(expected, 100)).await.unwrap();
        assert_eq!(sequence, expected);
    }
    wal.close();
    let (wal, recovery) = Wal::open(dir.path(), small_files()).unwrap();
    assert_eq!(recovery.cut_bytes, 0);
    let sequences: Vec<u64> = recovery.records.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, (1..=100).collect::<Vec<_>>());
    for record in &recovery.records {
        assert_eq!(record.payload, payload(record.sequence, 100));
    }
    // Sequences continue after recovery.
    assert_eq!(wal.append(payload(101, 1)).await.unwrap(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let wal = Arc::new(wal);
    // Hold the writer so that every append below is queued before it drains any.
    let resume = wal.pause_writer().await;
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            let mut tickets = Vec::new();
            for i in 0..20 {
                tickets.push(wal.enqueue(payload(t * 100 + i, 50)).await.unwrap());
            }
            tickets
        }));
    }
    let mut tickets = Vec::new();
    for task in tasks {
        tickets.extend(task.await.unwrap());
    }
    resume.send(()).unwrap();
    let mut all = Vec::new();
    for ticket in tickets {
        all.push(ticket.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=640).collect::<Vec<_>>());
    let stats = wal.stats().await.unwrap();
    assert_eq!(stats.records, 640);
    // 640 appends waiting at once (32 KiB, under max_group_bytes) are one group
    // commit: one write, one fsync.
    assert_eq!(stats.syncs, 1, "{stats:?}");
    assert_eq!(stats.sync_latency.count(), 1);

    // Appends waiting behind a large group are split at max_group_bytes, and
    // still share syncs.
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_group_bytes: 10 * RECORD_COST_FOR_TEST,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    let resume = wal.pause_writer().await;
    let mut tickets = Vec::new();
    for i in 1..=100u64 {
        tickets.push(wal.enqueue(payload(i, 100)).await.unwrap());
    }
    drop(resume);
    for (expected, ticket) in (1..).zip(tickets) {
        assert_eq!(ticket.await.unwrap(), expected);
    }
    let stats = wal.stats().await.unwrap();
    assert_eq!(stats.records, 100);
    assert!(
        stats.syncs < stats.records && stats.syncs >= 10,
        "{stats:?}"
    );
}

#[test]
fn sync_latency_quantiles_are_close_upper_bounds() {
    use std::time::Duration;
    let mut latency = SyncLatency::default();
    assert_eq!(latency.quantile(0.5), None);
    // 1..=1000 microseconds, once each.
    for micros in 1..=1000u64 {
        latency.record(Duration::from_micros(micros));
    }
    assert_eq!(latency.count(), 1000);
    assert_eq!(latency.max(), Duration::from_micros(1000));
    assert_eq!(latency.total(), Duration::from_micros(500_500));
    for (quantile, exact) in [(0.5, 500u64), (0.99, 990), (1.0, 1000), (0.0, 1)] {
        let got = latency.quantile(quantile).unwrap();
        let exact = Duration::from_micros(exact);
        assert!(got >= exact, "q{quantile}: {got:?} < {exact:?}");
        assert!(
            got.as_secs_f64() <= exact.as_secs_f64() * (1.0 + 1.0 / 16.0),
            "q{quantile}: {got:?} too far above {exact:?}"
        );
    }
    // Every bucket's bounds meet the next one's, and huge values saturate.
    for nanos in (0..5000u64).chain([u64::MAX / 2, u64::MAX]) {
        let index = SyncLatency::bucket(nanos);
        assert!(
            SyncLatency::upper_bound(index) >= Duration::from_nanos(nanos)
                || index == SYNC_BUCKETS - 1
        );
        if index > 0 && index < SYNC_BUCKETS - 1 {
            assert!(SyncLatency::upper_bound(index - 1) < Duration::from_nanos(nanos));
        }
    }
    latency.record(Duration::MAX);
    assert_eq!(latency.quantile(1.0), Some(Duration::MAX));
}

#[tokio::test]
async fn a_failed_write_or_sync_fails_the_group_and_every_later_append() {
    for at in [FailPoint::Write, FailPoint::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        for i in 1..=5u64 {
            assert_eq!(wal.append(payload(i, 64)).await.unwrap(), i);
        }
        wal.fail_next(at).await;
        let error = wal.append(payload(6, 64)).await.unwrap_err();
        assert!(
            matches!(&error, WalError::Failed { reason } if reason.contains("injected")),
            "{at:?}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::Internal);
        // Nothing is accepted after the failure, even though the injected fault
        // is gone: the file's state is unknown.
        let error = wal.append(payload(7, 64)).await.unwrap_err();
        assert!(matches!(error, WalError::Failed { .. }), "{at:?}: {error}");
        let stats = wal.stats().await.unwrap();
        assert_eq!(stats.records, 5, "{at:?}");
        assert_eq!(stats.syncs, 5, "{at:?}");
        wal.close();

        // Reopening recovers the intact prefix and accepts appends again. The
        // failed group was never acknowledged; after a failed sync its bytes may
        // still be in the file (here they are: the write itself succeeded), and
        // recovery returns them like any intact record.
        let (wal, recovery) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let sequences: Vec<u64> = recovery.records.iter().map(|r| r.sequence).collect();
        let expected_last = match at {
            FailPoint::Write => 5,
            FailPoint::Sync => 6,
        };
        assert_eq!(sequences, (1..=expected_last).collect::<Vec<_>>(), "{at:?}");
        assert_eq!(recovery.cut_bytes, 0, "{at:?}");
        assert_eq!(
            wal.append(payload(expected_last + 1, 1)).await.unwrap(),
            expected_last + 1
        );
    }
}

#[tokio::test]
async fn truncation_deletes_files_releases_budget_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_bytes: 64 * 1024,
        file_bytes: 4096,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    for i in 1..=200u64 {
        wal.append(payload(i, 200)).await.unwrap();
    }
    let before = wal.available_bytes();
    let released = wal.truncate(150).await.unwrap();
    assert!(released > 0);
    assert_eq!(wal.available_bytes(), before + released);
    wal.close();
    let (_, recovery) = Wal::open(dir.path(), options).unwrap();
    let sequences: Vec<u64> = recovery.records.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, (151..=200).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_full_log_applies_backpressure_until_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        max_bytes: 10 * (RECORD_COST_FOR_TEST as u64),
        file_bytes: 2 * (RECORD_COST_FOR_TEST as u64),
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    let wal = Arc::new(wal);
    for i in 1..=10u64 {
        wal.append(payload(i, 100)).await.unwrap();
    }
    let blocked = tokio::spawn({
        let wal = wal.clone();
        async move { wal.append(payload(11, 100)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !blocked.is_finished(),
        "an append into a full log must wait"
    );
    wal.truncate(4).await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), 11);
    let too_big = wal
        .append(Bytes::from(vec![0; 11 * RECORD_COST_FOR_TEST]))
        .await;
    assert!(matches!(too_big, Err(WalError::RecordTooLarge { .. })));
}

/// The on-disk size of a `payload(_, 100)` record.
const RECORD_COST_FOR_TEST: usize = file::RECORD_HEADER_LEN + 8 + 100;

#[tokio::test]
async fn torn_and_corrupted_tails_are_cut_to_the_intact_prefix() {
    for damage in ["torn-header", "torn-payload", "bad-crc", "garbage"] {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        for i in 1..=10u64 {
            wal.append(payload(i, 64)).await.unwrap();
        }
        wal.close();
        let log = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        let mut bytes = std::fs::read(&log).unwrap();
        let record_len = file::RECORD_HEADER_LEN + 8 + 64;
        match damage {
            "torn-header" => bytes.truncate(bytes.len() - record_len + 5),
            "torn-payload" => bytes.truncate(bytes.len() - 10),
            "bad-crc" => {
                let at = bytes.len() - 3;
                bytes[at] ^= 0x40;
            }
            _ => bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]),
        }
        std::fs::write(&log, &bytes).unwrap();
        let (wal, recovery) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let expected_last = if damage == "garbage" { 10 } else { 9 };
        let sequences: Vec<u64> = recovery.records.iter().map(|r| r.sequence).collect();
        assert_eq!(
            sequences,
            (1..=expected_last).collect::<Vec<_>>(),
            "{damage}"
        );
        assert!(recovery.cut_bytes > 0, "{damage}");
        // New appends continue right after the intact prefix, and survive.
        assert_eq!(
            wal.append(payload(expected_last + 1, 1)).await.unwrap(),
            expected_last + 1
        );
        wal.close();
        let (_, again) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(again.records.len() as u64, expected_last + 1, "{damage}");
        assert_eq!(again.cut_bytes, 0);
    }
}

#[test]
fn scanning_random_bytes_never_panics() {
    let mut out = Vec::new();
    let mut state = 0x1234_5678_u64;
    for len in 0..2_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut bytes = file::MAGIC.to_vec();
        bytes.extend((0..len).map(|i| (state >> (i % 56)) as u8));
        out.clear();
        let _ = file::scan_for_test(&bytes, &mut out);
    }
}
