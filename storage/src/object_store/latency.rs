//! Latency injection for any [`ObjectStore`], for benchmarks and simulation.
//!
//! Each request first waits a first-byte latency drawn from a lognormal
//! distribution, then (for data-carrying requests) a transfer time proportional to
//! its bytes. The two built-in profiles model S3 Standard and S3 Express One Zone;
//! docs/latency-profiles.md says where their numbers come from. Draws come from a
//! seeded generator, and sleeps go through `tokio::time`, so a run under a paused
//! clock is deterministic.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fjord_common::SeededRng;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// A lognormal distribution given by its median and the standard deviation of
/// its logarithm (`p99 ≈ median · e^(2.326·sigma)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    /// The median (p50).
    pub median: Duration,
    /// The standard deviation of `ln(latency)`.
    pub sigma: f64,
}

impl LogNormal {
    /// One draw.
    pub fn sample(&self, rng: &SeededRng) -> Duration {
        // Box-Muller from two uniforms in (0, 1].
        const SCALE: u64 = 1 << 53;
        let uniform = || (rng.below(SCALE) + 1) as f64 / SCALE as f64;
        let (u1, u2) = (uniform(), uniform());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let seconds = self.median.as_secs_f64() * (self.sigma * normal).exp();
        // Cap far tails at 100 × the median so one draw cannot stall a benchmark.
        Duration::from_secs_f64(seconds.min(self.median.as_secs_f64() * 100.0))
    }

    /// The 99th percentile (before the tail cap).
    pub fn p99(&self) -> Duration {
        Duration::from_secs_f64(self.median.as_secs_f64() * (2.326 * self.sigma).exp())
    }
}

/// The latencies a [`LatencyInjectingObjectStore`] adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyProfile {
    /// A short name for reports.
    pub name: &'static str,
    /// GET time to first byte (ranged or whole).
    pub get_first_byte: LogNormal,
    /// HEAD, DELETE, LIST and COPY latency.
    pub metadata: LogNormal,
    /// PUT (and multipart create) latency before the payload transfer.
    pub put_first_byte: LogNormal,
    /// Time per MiB transferred on one connection, GET or PUT.
    pub per_mib: Duration,
}

impl LatencyProfile {
    /// S3 Standard, same-region client (see docs/latency-profiles.md).
    pub const S3_STANDARD: LatencyProfile = LatencyProfile {
        name: "s3-standard",
        get_first_byte: LogNormal {
            median: Duration::from_millis(30),
            sigma: 0.7,
        },
        metadata: LogNormal {
            median: Duration::from_millis(20),
            sigma: 0.6,
        },
        put_first_byte: LogNormal {
            median: Duration::from_millis(50),
            sigma: 0.7,
        },
        // About 90 MB/s per connection.
        per_mib: Duration::from_micros(11_600),
    };

    /// S3 Express One Zone, client in the bucket's availability zone.
    pub const S3_EXPRESS_ONE_ZONE: LatencyProfile = LatencyProfile {
        name: "s3-express-one-zone",
        get_first_byte: LogNormal {
            median: Duration::from_millis(4),
            sigma: 0.4,
        },
        metadata: LogNormal {
            median: Duration::from_millis(3),
            sigma: 0.4,
        },
        put_first_byte: LogNormal {
            median: Duration::from_millis(6),
            sigma: 0.5,
        },
        // About 200 MB/s per connection.
        per_mib: Duration::from_micros(5_200),
    };

    fn transfer(&self, bytes: u64) -> Duration {
        self.per_mib.mul_f64(bytes as f64 / (1024.0 * 1024.0))
    }
}

/// Wraps an [`ObjectStore`] and delays each request as its profile says.
#[derive(Debug)]
pub struct LatencyInjectingObjectStore {
    inner: Arc<dyn ObjectStore>,
    profile: LatencyProfile,
    rng: SeededRng,
}

impl LatencyInjectingObjectStore {
    /// Wraps `inner`; `seed` drives the draws.
    pub fn new(inner: Arc<dyn ObjectStore>, profile: LatencyProfile, seed: u64) -> Self {
        Self {
            inner,
            profile,
            rng: SeededRng::new(seed),
        }
    }

    async fn wait(&self, distribution: &LogNormal, bytes: u64) {
        let delay = distribution.sample(&self.rng) + self.profile.transfer(bytes);
        tokio::time::sleep(delay).await;
    }
}

impl fmt::Display for LatencyInjectingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency[{}]({})", self.profile.name, self.inner)
    }
}

#[async_trait]
impl ObjectStore for LatencyInjectingObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.wait(
            &self.profile.put_first_byte,
            payload.content_length() as u64,
        )
        .await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // Parts are not delayed: multipart uploads are for large objects, whose
        // time is dominated by bandwidth, which the inner store already spends.
        self.wait(&self.profile.put_first_byte, 0).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            self.wait(&self.profile.metadata, 0).await;
            return self.inner.get_opts(location, options).await;
        }
        self.wait(&self.profile.get_first_byte, 0).await;
        let result = self.inner.get_opts(location, options).await?;
        // The transfer time of the whole range, before handing the body over.
        tokio::time::sleep(
            self.profile
                .transfer(result.range.end.saturating_sub(result.range.start)),
        )
        .await;
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // Deletes are off the latency-critical path: not delayed.
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.wait(&self.profile.metadata, 0).await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.wait(&self.profile.metadata, 0).await;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn lognormal_draws_match_median_and_tail() {
        let rng = SeededRng::new(3);
        let distribution = LatencyProfile::S3_STANDARD.get_first_byte;
        let mut draws: Vec<Duration> = (0..20_000).map(|_| distribution.sample(&rng)).collect();
        draws.sort_unstable();
        let p50 = draws[draws.len() / 2].as_secs_f64();
        let p99 = draws[draws.len() * 99 / 100].as_secs_f64();
        assert!((0.027..0.033).contains(&p50), "p50 {p50}");
        let expected_p99 = distribution.p99().as_secs_f64();
        assert!(
            (expected_p99 * 0.85..expected_p99 * 1.15).contains(&p99),
            "p99 {p99}, expected {expected_p99}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_wait_first_byte_plus_transfer() {
        let store = LatencyInjectingObjectStore::new(
            Arc::new(InMemory::new()),
            LatencyProfile::S3_EXPRESS_ONE_ZONE,
            1,
        );
        let path = Path::from("k");
        let started = Instant::now();
        store
            .put(&path, PutPayload::from(vec![0u8; 8 << 20]))
            .await
            .unwrap();
        let put = started.elapsed();
        assert!(put >= Duration::from_micros(8 * 5_200), "{put:?}");
        let started = Instant::now();
        let bytes = store.get_range(&path, 0..(1 << 20)).await.unwrap();
        assert_eq!(bytes.len(), 1 << 20);
        let get = started.elapsed();
        assert!(get >= Duration::from_micros(5_200), "{get:?}");
        assert!(get < Duration::from_millis(100), "{get:?}");
    }
}
