//! Merging shards: the same known samples recorded once by one recorder and split over three
//! shard recorders give identical figures, and the merged percentiles are those of one
//! histogram holding every sample (equality, not closeness).

use std::time::Duration;

use hdrhistogram::Histogram;
use metrics::{
    merge_shards, Fleet, Metrics, MetricsSnapshot, Peer, RequestOutcome, RequestRecord,
    ShardMeasurements, Slot, TokenAnswer,
};
use tokio::time::Instant;

const INSTANCES: usize = 7;
const SHARDS: usize = 3;
const RUN: Duration = Duration::from_secs(12);

fn fleet() -> Fleet {
    Fleet {
        region_of: vec![0, 0, 0, 1, 1, 2, 2],
        apis: vec!["orders".to_owned(), "stock".to_owned()],
    }
}

/// A deterministic spread of samples: request `n` of the run.
fn request(n: u64) -> RequestRecord {
    let instance = (n * 5 % INSTANCES as u64) as usize;
    let intended = Duration::from_micros(n * 9_973 % RUN.as_micros() as u64);
    // Latencies from tens of µs to seconds, so that many histogram buckets are used.
    let latency = Duration::from_micros(37 + (n * n * 7_919) % 2_400_000);
    let sent = intended + latency / 3;
    let outcome = match n % 17 {
        0 => RequestOutcome::Status(401),
        1 => RequestOutcome::Status(503),
        _ => RequestOutcome::Status(200),
    };
    RequestRecord {
        instance,
        intended_start: intended,
        sent_at: sent,
        finished_at: intended + latency,
        outcome,
        token_obtained_at: Some(if n % 4 == 0 {
            sent + latency / 5
        } else {
            Duration::from_millis(n % 3_000)
        }),
    }
}

/// Feeds `recorder` the run's events for the instances `owns` accepts, in order of
/// completion as a run records them (the recorder keeps only the last three timeline
/// intervals' histograms open for late records).
fn record(recorder: &Metrics, owns: impl Fn(usize) -> bool) {
    recorder.revocation_event(Duration::from_secs(4));
    let mut requests: Vec<_> = (0..20_000u64).map(|n| (n, request(n))).collect();
    requests.sort_by_key(|(_, r)| r.finished_at);
    for (n, record) in requests {
        if !owns(record.instance) {
            continue;
        }
        let slot = Slot {
            instance: record.instance,
            api: (n % 2) as usize,
        };
        if n % 50 == 0 {
            recorder.cache_miss(slot);
            recorder.episode_started(slot);
            recorder.fetch_started(slot, record.sent_at);
            recorder.signed(Duration::from_nanos(40_000 + n * 31 % 900_000));
            recorder.fetch_finished(if n % 150 == 0 {
                TokenAnswer::Throttled
            } else {
                TokenAnswer::Ok
            });
            recorder.episode_ended(slot, (1 + n % 7) as u32);
        } else {
            recorder.cache_hit(slot);
        }
        recorder.record_request(&record);
        // Each instance's connections: a new one every 400th request, over TLS on even
        // instances, and a failed attempt every 3,000th.
        if n % 400 == 0 {
            let peer = if n % 800 == 0 {
                Peer::Idp
            } else {
                Peer::Backend
            };
            let tls = record.instance % 2 == 0;
            recorder.connection_opened(peer, Duration::from_micros(200 + n % 1_700), tls);
        }
        if n % 3_000 == 0 {
            recorder.connection_failed(Peer::Backend);
        }
    }
    // Arrivals dropped at instances 3, 5 and 6 (a drop belongs to its instance's shard).
    for instance in [3, 5, 6] {
        if owns(instance) {
            recorder.record_dropped(Duration::from_millis(instance as u64 * 1_000 + 17), 1);
        }
    }
}

fn hlog(snapshot: &MetricsSnapshot) -> Vec<u8> {
    let mut bytes = Vec::new();
    snapshot.latency_log.write_to(&mut bytes).unwrap();
    bytes
}

/// The run recorded by three shard recorders, each of its instances, measurements read back
/// through JSON and the interval log's text as `tokenbench merge` reads them.
fn three_shards(start: Instant) -> Vec<ShardMeasurements> {
    // All made first, so that they start within the same second of wall-clock time, as
    // shards started with --start-at do (merging aligns shards on whole seconds of it).
    let recorders: Vec<(Vec<usize>, Metrics)> = (0..SHARDS)
        .map(|shard| {
            let mine: Vec<usize> = (0..INSTANCES).filter(|i| i % SHARDS == shard).collect();
            let recorder = Metrics::for_shard(fleet(), mine.clone(), start, RUN).unwrap();
            (mine, recorder)
        })
        .collect();
    recorders
        .into_iter()
        .map(|(mine, recorder)| {
            record(&recorder, |i| mine.contains(&i));
            let (snapshot, tally) = recorder.snapshot_and_tally(RUN);
            assert_eq!(snapshot.instances, mine.len());
            let tally = serde_json::from_str(&serde_json::to_string(&tally).unwrap()).unwrap();
            ShardMeasurements {
                tally,
                hlog: hlog(&snapshot),
            }
        })
        .collect()
}

#[test]
fn three_shards_merge_into_the_unsharded_figures() {
    let start = Instant::now();
    let whole = Metrics::for_run(fleet(), start, RUN).unwrap();
    record(&whole, |_| true);
    let expected = whole.snapshot(RUN);

    let shards = three_shards(start);
    let merged = merge_shards(shards).unwrap().snapshot;

    assert_eq!(merged.requests, expected.requests);
    assert_eq!(merged.latency_us, expected.latency_us);
    assert_eq!(merged.service_time_us, expected.service_time_us);
    assert_eq!(merged.token_wait_us, expected.token_wait_us);
    assert_eq!(merged.latency_spectrum, expected.latency_spectrum);
    assert_eq!(merged.cache, expected.cache);
    assert_eq!(merged.idp.token_requests, expected.idp.token_requests);
    assert_eq!(merged.idp.ok, expected.idp.ok);
    assert_eq!(merged.idp.throttled, expected.idp.throttled);
    assert_eq!(merged.idp.peak_second, expected.idp.peak_second);
    assert_eq!(merged.idp.peak_minute, expected.idp.peak_minute);
    assert_eq!(merged.signing, expected.signing);
    assert_eq!(merged.stampede, expected.stampede);
    assert_eq!(merged.invalidation, expected.invalidation);
    assert_eq!(merged.connections, expected.connections);
    assert!(
        expected.connections.backend.tls_handshakes > 0 && expected.connections.backend.failed > 0
    );
    assert_eq!(merged.regions, expected.regions);
    assert_eq!(merged.apis, expected.apis);
    assert_eq!(merged.timeline, expected.timeline);
    assert_eq!(merged.instances, INSTANCES);
    assert!(expected.invalidation.events > 0 && expected.stampede.episodes > 0);

    // The merged log holds the same intervals as the unsharded run's, byte for byte once
    // written (the headers differ: each recorder noted its own start).
    let intervals = |snapshot: &MetricsSnapshot| {
        String::from_utf8(hlog(snapshot))
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (merged_log, expected_log) = (intervals(&merged), intervals(&expected));
    assert_eq!(merged_log.len(), 2 * expected.timeline.len());
    assert!(
        merged_log == expected_log,
        "the merged interval log differs"
    );
}

#[test]
fn merged_percentiles_are_those_of_every_sample_in_one_histogram() {
    let start = Instant::now();
    let mut all = Histogram::<u64>::new_with_bounds(1, metrics::MAX_LATENCY_US, 3).unwrap();
    for n in 0..20_000 {
        let r = request(n);
        all.record((r.finished_at - r.intended_start).as_micros() as u64)
            .unwrap();
    }
    let shards = three_shards(start);
    let latency = merge_shards(shards).unwrap().snapshot.latency_us;
    assert_eq!(latency.p50, Some(all.value_at_quantile(0.5)));
    assert_eq!(latency.p90, Some(all.value_at_quantile(0.9)));
    assert_eq!(latency.p99, Some(all.value_at_quantile(0.99)));
    assert_eq!(latency.p999, Some(all.value_at_quantile(0.999)));
    assert_eq!(latency.max, Some(all.max()));
}

#[test]
fn a_shard_measured_twice_or_of_another_fleet_is_refused() {
    let start = Instant::now();
    let shard = |fleet: Fleet, mine: Vec<usize>| {
        let recorder = Metrics::for_shard(fleet, mine, start, RUN).unwrap();
        let (snapshot, tally) = recorder.snapshot_and_tally(RUN);
        ShardMeasurements {
            tally,
            hlog: hlog(&snapshot),
        }
    };
    let twice = merge_shards(vec![shard(fleet(), vec![0, 1]), shard(fleet(), vec![1, 2])]);
    assert!(
        twice.unwrap_err().to_string().contains("instance 1"),
        "names the instance"
    );
    let other = merge_shards(vec![
        shard(fleet(), vec![0]),
        shard(Fleet::single(7), vec![1]),
    ]);
    assert!(other.unwrap_err().to_string().contains("fleets differ"));
    let garbled = merge_shards(vec![ShardMeasurements {
        hlog: b"Tag=x,1.0,1.0,abc\nnot a log line at all".to_vec(),
        ..shard(fleet(), vec![0])
    }]);
    assert!(garbled.is_err());
    // A tally whose counters do not fit its fleet (edited, or not written by tokenbench).
    let mut tally: serde_json::Value =
        serde_json::to_value(&shard(fleet(), vec![0]).tally).unwrap();
    tally["instances"].as_array_mut().unwrap().pop();
    let inconsistent = merge_shards(vec![ShardMeasurements {
        tally: serde_json::from_value(tally).unwrap(),
        ..shard(fleet(), vec![0])
    }]);
    assert!(inconsistent
        .unwrap_err()
        .to_string()
        .contains("6 instance counters for a fleet of 7"));
}
