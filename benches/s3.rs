//! The S3 endpoint against the native files API, in one run on the same
//! 3-node cluster, with the same client (reqwest, one process): 64 MiB
//! PUT and GET MB/s, and 4 KiB PUT and GET ops/s with p50/p99, 32 in
//! flight. Each S3 request is signed with Signature V4 (header auth,
//! `UNSIGNED-PAYLOAD`, as the AWS CLI signs uploads over HTTPS) by the
//! few lines of `sign` below: the AWS SDK's signer (`aws-sigv4`) would
//! bring the SDK's runtime crates into the build for one function.
//! `cargo bench --bench s3`; `cargo test` runs it in quick mode.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, Mac};
use hypha_testkit::cluster::Cluster;
use hypha_testkit::ADMIN_TOKEN;
use sha2::{Digest, Sha256};
use support::{client, drain, median, percentile, put, sized, small_ops};

const REGION: &str = "us-east-1";

struct Key {
    access: String,
    secret: String,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `YYYYMMDD'T'HHMMSS'Z'` of a Unix time (days to civil date: Howard
/// Hinnant's algorithm).
fn amz_date(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A request to `endpoint` + `path`, signed with Signature V4.
fn sign(
    http: &reqwest::Client,
    method: reqwest::Method,
    endpoint: &str,
    path: &str,
    key: &Key,
) -> reqwest::RequestBuilder {
    let host = endpoint.trim_start_matches("http://");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let date_time = amz_date(now);
    let date = &date_time[..8];
    let payload = "UNSIGNED-PAYLOAD";
    let signed = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{date_time}\n\n{signed}\n{payload}"
    );
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{}", key.secret).as_bytes(), date);
    let k = hmac(&k, REGION);
    let k = hmac(&k, "s3");
    let k = hmac(&k, "aws4_request");
    let signature = hex::encode(hmac(&k, &to_sign));
    http.request(method, format!("{endpoint}{path}"))
        .header("x-amz-date", date_time)
        .header("x-amz-content-sha256", payload)
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                key.access
            ),
        )
}

async fn s3_put(http: &reqwest::Client, endpoint: &str, key: &Key, path: &str, body: Vec<u8>) {
    let res = sign(http, reqwest::Method::PUT, endpoint, path, key)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
}

async fn s3_get(http: &reqwest::Client, endpoint: &str, key: &Key, path: &str) -> usize {
    drain(
        sign(http, reqwest::Method::GET, endpoint, path, key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    hypha_testkit::pseudo_random(len, seed)
}

struct Endpoints {
    admin: Vec<String>,
    s3: Vec<String>,
}

async fn setup(c: &Cluster, http: &reqwest::Client) -> (Endpoints, Key) {
    let admin: Vec<String> = c.alive().into_iter().map(|i| c.url(i)).collect();
    let mut s3 = Vec::new();
    for url in &admin {
        let node: serde_json::Value = http
            .get(format!("{url}/v1/node"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        s3.push(format!("http://{}", node["s3"].as_str().unwrap()));
    }
    let made: serde_json::Value = http
        .post(format!("{}/v1/s3/keys", admin[0]))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"role": "write", "description": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = Key {
        access: made["access_key"].as_str().unwrap().to_owned(),
        secret: made["secret_key"].as_str().unwrap().to_owned(),
    };
    let res = sign(http, reqwest::Method::PUT, &s3[0], "/bench", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
    (Endpoints { admin, s3 }, key)
}

/// MB/s of one PUT then GET of `size` bytes, written through node `w` and
/// read through the next (S3 when `s3`, else the files API).
async fn big_one(
    http: &reqwest::Client,
    e: &Endpoints,
    key: &Key,
    i: usize,
    size: usize,
    s3: bool,
) -> (f64, f64) {
    let mb = size as f64 / (1 << 20) as f64;
    let body = bytes(size, i as u64 + 11);
    let (w, r) = (i % e.admin.len(), (i + 1) % e.admin.len());
    let started = Instant::now();
    if s3 {
        s3_put(http, &e.s3[w], key, &format!("/bench/big/{i}"), body).await;
    } else {
        put(http, &e.admin[w], &format!("native/big/{i}"), body).await;
    }
    let put_mb_s = mb / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let got = if s3 {
        s3_get(http, &e.s3[r], key, &format!("/bench/big/{i}")).await
    } else {
        support::get(http, &e.admin[r], &format!("native/big/{i}")).await
    };
    assert_eq!(got, size);
    (put_mb_s, mb / started.elapsed().as_secs_f64())
}

struct Small {
    put_rate: f64,
    put_lat: Vec<f64>,
    get_rate: f64,
    get_lat: Vec<f64>,
}

async fn small(
    http: &reqwest::Client,
    e: &Endpoints,
    key: &Key,
    (ops, conc, round): (usize, usize, usize),
    s3: bool,
) -> Small {
    let body = bytes(4096, 5);
    let (put_rate, put_lat) = small_ops(ops, conc, |i| {
        let body = body.clone();
        let n = i % e.admin.len();
        async move {
            if s3 {
                s3_put(
                    http,
                    &e.s3[n],
                    key,
                    &format!("/bench/small/{round}/{i}"),
                    body,
                )
                .await;
            } else {
                put(
                    http,
                    &e.admin[n],
                    &format!("native/small/{round}/{i}"),
                    body,
                )
                .await;
            }
        }
    })
    .await;
    let (get_rate, get_lat) = small_ops(ops, conc, |i| {
        let n = (i + 1) % e.admin.len();
        async move {
            let got = if s3 {
                s3_get(http, &e.s3[n], key, &format!("/bench/small/{round}/{i}")).await
            } else {
                support::get(http, &e.admin[n], &format!("native/small/{round}/{i}")).await
            };
            assert_eq!(got, 4096);
        }
    })
    .await;
    Small {
        put_rate,
        put_lat,
        get_rate,
        get_lat,
    }
}

/// Rounds pooled: mean rate, every latency.
fn pool(rounds: Vec<Small>) -> Small {
    let k = rounds.len().max(1) as f64;
    let mut out = Small {
        put_rate: rounds.iter().map(|r| r.put_rate).sum::<f64>() / k,
        put_lat: rounds
            .iter()
            .flat_map(|r| r.put_lat.iter().copied())
            .collect(),
        get_rate: rounds.iter().map(|r| r.get_rate).sum::<f64>() / k,
        get_lat: rounds
            .iter()
            .flat_map(|r| r.get_lat.iter().copied())
            .collect(),
    };
    out.put_lat.sort_by(|a, b| a.total_cmp(b));
    out.get_lat.sort_by(|a, b| a.total_cmp(b));
    out
}

fn main() {
    let c = Cluster::start(3, "[storage]\nmin_free_bytes = 0\n");
    c.wait_all_up(3, Duration::from_secs(30));
    let waited = c.wait_caught_up(1024, Duration::from_secs(60));
    println!(
        "cluster settled {:.1} s after all were Up",
        waited.as_secs_f64()
    );
    let files = sized("HYPHA_BENCH_BIG_FILES", 4, 1);
    let size = sized("HYPHA_BENCH_BIG_BYTES", 64 << 20, 4 << 20);
    let ops = sized("HYPHA_BENCH_SMALL_OPS", 4_000, 40);
    let conc = sized("HYPHA_BENCH_CONCURRENCY", 32, 4);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = client();
        let (e, key) = setup(&c, &http).await;
        // Small operations first, on the settled cluster (a store is slow
        // for a moment after large files), in rounds whose order flips so
        // that neither path always goes first.
        let (mut n, mut s) = (Vec::new(), Vec::new());
        for round in 0..2 {
            let plan = (ops, conc, round);
            if round % 2 == 0 {
                n.push(small(&http, &e, &key, plan, false).await);
                s.push(small(&http, &e, &key, plan, true).await);
            } else {
                s.push(small(&http, &e, &key, plan, true).await);
                n.push(small(&http, &e, &key, plan, false).await);
            }
        }
        let (n, s) = (pool(n), pool(s));
        let line = |what: &str, s_rate: f64, s_lat: &[f64], n_rate: f64, n_lat: &[f64]| {
            println!(
                "4 KiB {what} (2 rounds of {ops} ops, {conc} in flight): S3 {s_rate:.0} ops/s p50 {:.2} ms p99 {:.2} ms; \
                 native {n_rate:.0} ops/s p50 {:.2} ms p99 {:.2} ms; S3 = {:.2}x native",
                percentile(s_lat, 50.0),
                percentile(s_lat, 99.0),
                percentile(n_lat, 50.0),
                percentile(n_lat, 99.0),
                s_rate / n_rate
            );
        };
        line("PUT", s.put_rate, &s.put_lat, n.put_rate, &n.put_lat);
        line("GET", s.get_rate, &s.get_lat, n.get_rate, &n.get_lat);
        let (mut n, mut s3) = (Vec::new(), Vec::new());
        for i in 0..files {
            if i % 2 == 0 {
                n.push(big_one(&http, &e, &key, i, size, false).await);
                s3.push(big_one(&http, &e, &key, i, size, true).await);
            } else {
                s3.push(big_one(&http, &e, &key, i, size, true).await);
                n.push(big_one(&http, &e, &key, i, size, false).await);
            }
        }
        let med = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| median(v.iter().map(f).collect());
        let (n_put, n_get) = (med(&n, |x| x.0), med(&n, |x| x.1));
        let (s_put, s_get) = (med(&s3, |x| x.0), med(&s3, |x| x.1));
        println!(
            "{} MiB (median of {files}, order alternating): PUT S3 {s_put:.0} vs native {n_put:.0} MB/s = {:.2}x; \
             GET S3 {s_get:.0} vs native {n_get:.0} MB/s = {:.2}x",
            size >> 20,
            s_put / n_put,
            s_get / n_get
        );
    });
}
