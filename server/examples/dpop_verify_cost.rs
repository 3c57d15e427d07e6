//! The server's CPU time for checking one DPoP proof, outside HTTP: [`dpop::verify`] (parse the
//! JWS, check the ES256/EdDSA signature, `typ`, `htm`, `htu`, `iat`, `ath`) on proofs read from
//! stdin, one JSON object a line: `{"proof": "...", "htm": "GET", "htu": "http://...",
//! "access": "..."}`. Prints `{"n":…,"p50_us":…,"p99_us":…,"mean_us":…}`. `make bench` builds
//! it and bench/run.mjs feeds it proofs made by bench/lib/dpop.mjs, beside the per-request
//! table. Every proof must verify (the run fails otherwise).

use std::io::BufRead as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _, Result};
use rotafetch_server::dpop::{self, Expected};
use serde_json::Value;

fn main() -> Result<()> {
    let mut nanos = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).context("a line of stdin is not JSON")?;
        let field = |k: &str| v[k].as_str().ok_or_else(|| anyhow!("{k} missing"));
        let now_secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let expected = Expected {
            htm: field("htm")?,
            htu: field("htu")?,
            now_secs,
            access_token: v["access"].as_str(),
        };
        let proof = field("proof")?;
        let t = Instant::now();
        let verified = dpop::verify(proof, &expected, None);
        nanos.push(t.elapsed().as_nanos());
        verified.map_err(|e| anyhow!("proof refused: {e}"))?;
    }
    anyhow::ensure!(!nanos.is_empty(), "no proofs on stdin");
    let n = nanos.len();
    let mean = nanos.iter().sum::<u128>() as f64 / n as f64;
    nanos.sort_unstable();
    let at = |p: usize| nanos[((p * n).div_ceil(100)).clamp(1, n) - 1] as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({"n": n, "p50_us": at(50), "p99_us": at(99), "mean_us": mean / 1000.0})
    );
    Ok(())
}
