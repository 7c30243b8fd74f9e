//! An S3-compatible object store for the blob tests: moto's server (PyPI
//! `moto[server]`, installed by `cargo xtask setup`) as a child process on a
//! loopback port, spoken to over its plain S3 REST API.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::oidc::free_port;

/// A running S3 endpoint with one bucket.
pub struct S3 {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket the server made at start.
    pub bucket: String,
    http: reqwest::Client,
}

impl S3 {
    /// Starts moto's server and creates `bucket`.
    pub async fn start(bucket: &str) -> S3 {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "start moto's S3 server (python3 -m moto.server; cargo xtask setup installs it)",
            );
        let s3 = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = s3
                .http
                .put(format!("{}/{bucket}", s3.endpoint))
                .send()
                .await;
            if let Ok(response) = created {
                assert!(
                    response.status().is_success(),
                    "create bucket: {response:?}"
                );
                return s3;
            }
            assert!(Instant::now() < deadline, "moto's S3 server did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The server settings that keep blobs under `prefix` in the bucket.
    pub fn server_env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            (
                "MEDMEMORY_BLOB_URL",
                format!("s3://{}/{prefix}", self.bucket),
            ),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "medmemory-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "medmemory-test-secret".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The keys under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let body = self
            .http
            .get(format!("{}/{}", self.endpoint, self.bucket))
            .query(&[("list-type", "2"), ("prefix", prefix)])
            .send()
            .await
            .expect("list objects")
            .text()
            .await
            .expect("list body");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect();
        keys.sort();
        keys
    }

    /// Writes an object directly, behind the server's back.
    pub async fn put(&self, key: &str, bytes: &[u8]) {
        let response = self
            .http
            .put(format!("{}/{}/{key}", self.endpoint, self.bucket))
            .body(bytes.to_vec())
            .send()
            .await
            .expect("put object");
        assert!(response.status().is_success(), "put {key}: {response:?}");
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
