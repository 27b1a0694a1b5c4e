//! HTTPS on the admin API, against real node processes: the CLI reaches an
//! HTTPS node with the cluster CA and refuses one it cannot verify, plain
//! HTTP on the HTTPS port gets no data, idle connections on the port do
//! not keep other clients waiting, and SIGHUP or the reload route swap the
//! certificate while a broken file keeps the old one. `cluster up --https`
//! uses fixed ports 27700–27709 (below the ephemeral range).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{NodeProcess, ADMIN_TOKEN};

/// A cluster CA and an admin certificate for the default hosts, made with
/// the CLI as an operator would: `(ca.pem, admin dir)`.
fn pki(root: &Path) -> (PathBuf, PathBuf) {
    let (ca_dir, admin_dir) = (root.join("ca"), root.join("admin"));
    let ok = |out: Output| assert!(out.status.success(), "{out:?}");
    ok(hypha(&["cert", "ca", "--dir", ca_dir.to_str().unwrap()]));
    ok(hypha(&[
        "cert",
        "admin",
        "--ca-dir",
        ca_dir.to_str().unwrap(),
        "--out",
        admin_dir.to_str().unwrap(),
    ]));
    (admin_dir.join("ca.pem"), admin_dir)
}

/// The `hypha` binary with none of the client variables of the caller.
fn hypha_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hypha"));
    cmd.args(args)
        .env_remove("HYPHA_URL")
        .env_remove("HYPHA_CA")
        .env_remove("HYPHA_ADMIN_TOKEN")
        .stdin(Stdio::null());
    cmd
}

fn hypha(args: &[&str]) -> Output {
    hypha_command(args).output().unwrap()
}

/// A one-node cluster (one replica) serving HTTPS: `(node, ca.pem, admin dir)`.
fn https_node(root: &Path) -> (NodeProcess, PathBuf, PathBuf) {
    let (ca, admin_dir) = pki(root);
    let config = root.join("node.toml");
    std::fs::write(
        &config,
        "[dht]\nreplicas = 1\nwrite_quorum = 1\nread_quorum = 1\n[storage]\nmin_free_bytes = 0\n",
    )
    .unwrap();
    let node = common::spawn_node(
        &root.join("data"),
        &[
            "--http-tls-dir",
            admin_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    (node, ca, admin_dir)
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

/// A client trusting `ca` (the CLI's own builder), from `source` if given.
fn client(ca: &Path, source: Option<IpAddr>) -> reqwest::Client {
    hypha::commands::client_builder(Some(ca))
        .unwrap()
        .local_address(source)
        // Every request a new connection: through the accept loop and the
        // handshake, and no pooled connection outlives a test runtime.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn members_status(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    client
        .get(format!("{url}/v1/cluster/members"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// BLAKE3 (hex) of the certificate the server at `addr` presents.
fn presented_cert(addr: SocketAddr, ca: &Path) -> Result<String, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    common::block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
            .await
            .map_err(|_| "handshake timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        Ok(blake3::hash(&leaf).to_hex().to_string())
    })
}

/// BLAKE3 (hex) of the first certificate in a PEM file.
fn file_cert(path: &Path) -> String {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(path).unwrap();
    blake3::hash(&der).to_hex().to_string()
}

#[test]
fn an_https_node_answers_the_cli_with_the_cluster_ca() {
    let root = tempfile::tempdir().unwrap();
    let (node, ca, _) = https_node(root.path());
    assert!(node.url.starts_with("https://"), "{}", node.url);
    let url = node.url.as_str();
    common::wait_until(
        "`hypha members` lists the node",
        Duration::from_secs(30),
        || {
            let out = hypha(&[
                "members",
                "--url",
                url,
                "--ca",
                ca.to_str().unwrap(),
                "--token",
                ADMIN_TOKEN,
                "--json",
            ]);
            assert!(out.status.success(), "{out:?}");
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            doc["members"].as_array().map(Vec::len) == Some(1)
        },
    );

    // The files commands too, with the CA from the environment.
    let file = root.path().join("hello.txt");
    std::fs::write(&file, b"over https").unwrap();
    let with_env = |args: &[&str]| {
        hypha_command(args)
            .env("HYPHA_URL", url)
            .env("HYPHA_CA", &ca)
            .env("HYPHA_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    common::wait_until("the node serves files", Duration::from_secs(30), || {
        with_env(&["put", file.to_str().unwrap(), "hello.txt"])
            .status
            .success()
    });
    let got = with_env(&["get", "hello.txt"]);
    assert!(got.status.success(), "{got:?}");
    assert_eq!(got.stdout, b"over https");
}

#[test]
fn plain_http_to_the_https_port_gets_no_data() {
    let root = tempfile::tempdir().unwrap();
    let (node, ca, _) = https_node(root.path());
    let addr = addr_of(&node.url);
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The node may close before the whole request is written (it refuses
    // the first bytes, which are not a TLS hello): a broken pipe here is
    // the refusal, not a failure of the test.
    let sent = write!(
        tcp,
        "GET /v1/cluster/members HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    );
    if let Err(e) = &sent {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    // The node closes the connection (after at most a TLS alert; a reset
    // when our request was left unread).
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => panic!("the node neither answered nor closed: {e}"),
        }
    }
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/"),
        "plain HTTP was answered: {answer:?}"
    );
    assert!(answer.len() < 16, "more than an alert: {answer:?}");
    let plain = common::block_on(reqwest::get(format!("http://{addr}/metrics")));
    assert!(plain.is_err(), "http:// to the HTTPS port: {plain:?}");
    let trusted = client(&ca, None);
    common::wait_until(
        "the failed handshake is counted",
        Duration::from_secs(10),
        || {
            common::metric_of(
                &trusted,
                &node.url,
                "hypha_http_tls_refused_total{reason=\"handshake\"}",
            ) >= 2.0
        },
    );
}

#[test]
fn a_client_without_the_ca_or_with_another_ca_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (node, _, _) = https_node(root.path());
    let url = node.url.as_str();

    let no_ca = hypha(&["members", "--url", url, "--token", ADMIN_TOKEN]);
    assert!(!no_ca.status.success());
    let err = String::from_utf8_lossy(&no_ca.stderr);
    assert!(err.contains("https needs the cluster CA"), "{err}");
    assert!(err.contains("certificate"), "{err}");

    let other = root.path().join("other");
    let (other_ca, _) = pki(&other);
    let wrong = hypha(&[
        "members",
        "--url",
        url,
        "--ca",
        other_ca.to_str().unwrap(),
        "--token",
        ADMIN_TOKEN,
    ]);
    assert!(!wrong.status.success());
    // The other CA has the same name: the chain fails on its signature.
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(!err.contains("https needs the cluster CA"), "{err}");
}

/// With idle connections held on the HTTPS port — one, then 500 from one
/// address — a client is served within a second, far inside the 3 s
/// handshake deadline: handshakes run off the accept loop. The flood's
/// address is capped (8 pending), and served again once those expire.
#[test]
fn idle_connections_do_not_stall_the_https_listener() {
    let root = tempfile::tempdir().unwrap();
    let (node, ca, _) = https_node(root.path());
    let (url, addr) = (node.url.as_str(), addr_of(&node.url));
    let loopback = client(&ca, None);
    let elsewhere = client(&ca, Some(IpAddr::from([127, 0, 0, 2])));
    let limit = Duration::from_secs(1);
    let served_within = |client: &reqwest::Client| {
        let started = Instant::now();
        let status = common::block_on(async {
            tokio::time::timeout(limit, members_status(client, url)).await
        });
        (status, started.elapsed())
    };
    // Warm up: the node is serving.
    common::wait_until("the node answers", Duration::from_secs(30), || {
        matches!(served_within(&loopback).0, Ok(Ok(200)))
    });

    let one = TcpStream::connect(addr).unwrap();
    for client in [&loopback, &elsewhere] {
        let (status, took) = served_within(client);
        assert!(
            matches!(status, Ok(Ok(200))),
            "{status:?} with one idle connection"
        );
        eprintln!("one idle connection: served in {took:?}");
    }

    let flood: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let (status, took) = served_within(&elsewhere);
    assert!(
        matches!(status, Ok(Ok(200))),
        "{status:?} with 500 idle connections"
    );
    eprintln!("500 idle connections from 127.0.0.1: 127.0.0.2 served in {took:?}");
    common::wait_until(
        "the flood is capped per source",
        Duration::from_secs(10),
        || {
            common::metric_of(
                &elsewhere,
                url,
                "hypha_http_tls_refused_total{reason=\"per_source\"}",
            ) >= 490.0
        },
    );
    // The flood still holds its sockets; the ones admitted expire and the
    // address is served again.
    let waited = common::wait_until("127.0.0.1 served again", Duration::from_secs(10), || {
        matches!(served_within(&loopback).0, Ok(Ok(200)))
    });
    eprintln!("127.0.0.1 served again after {waited:?}");
    assert!(
        common::metric_of(
            &elsewhere,
            url,
            "hypha_http_tls_refused_total{reason=\"deadline\"}"
        ) >= 1.0,
        "the idle connections admitted expired"
    );
    drop((one, flood));
}

#[test]
fn reload_swaps_the_certificate_and_a_broken_file_keeps_the_old_one() {
    let root = tempfile::tempdir().unwrap();
    let (node, ca, admin_dir) = https_node(root.path());
    let addr = addr_of(&node.url);
    let cert_file = admin_dir.join("admin.pem");
    let first = file_cert(&cert_file);
    common::wait_until(
        "the node presents its certificate",
        Duration::from_secs(30),
        || presented_cert(addr, &ca).as_deref() == Ok(first.as_str()),
    );
    let renew = || {
        let out = hypha(&[
            "cert",
            "admin",
            "--ca-dir",
            root.path().join("ca").to_str().unwrap(),
            "--out",
            admin_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        file_cert(&cert_file)
    };

    // SIGHUP.
    let second = renew();
    assert_ne!(second, first);
    node.signal("HUP");
    common::wait_until(
        "SIGHUP swaps the certificate",
        Duration::from_secs(10),
        || presented_cert(addr, &ca).as_deref() == Ok(second.as_str()),
    );

    // The reload route.
    let third = renew();
    let trusted = client(&ca, None);
    let reload = || {
        common::block_on(async {
            let r = trusted
                .post(format!("{}/v1/node/tls/reload", node.url))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        })
    };
    let (status, doc) = reload();
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["admin"]["cert_blake3"], third.as_str());
    assert_eq!(presented_cert(addr, &ca).as_deref(), Ok(third.as_str()));

    // A broken key: refused, the certificate in use stays and is served.
    std::fs::write(admin_dir.join("admin.key"), "not a key").unwrap();
    let (status, doc) = reload();
    assert_eq!(status, 409, "{doc}");
    assert_eq!(doc["error"]["code"], "tls_reload_failed");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin.key"),
        "{doc}"
    );
    node.signal("HUP");
    common::wait_until(
        "the failed SIGHUP reload is counted",
        Duration::from_secs(10),
        || {
            common::metric_of(
                &trusted,
                &node.url,
                "hypha_http_tls_reloads_total{result=\"error\"}",
            ) >= 2.0
        },
    );
    assert_eq!(presented_cert(addr, &ca).as_deref(), Ok(third.as_str()));
    let status = common::block_on(members_status(&trusted, &node.url));
    assert_eq!(status, Ok(200));
}

#[test]
fn a_node_with_unusable_admin_certificates_does_not_start() {
    let root = tempfile::tempdir().unwrap();
    let (_, admin_dir) = pki(root.path());
    std::fs::write(admin_dir.join("admin.pem"), "hello").unwrap();
    let out = common::node_command(
        &root.path().join("data"),
        &["--http-tls-dir", admin_dir.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("admin HTTPS") && err.contains("admin.pem"),
        "{err}"
    );
}

/// `hypha cluster up`, stopped with SIGTERM (which stops its nodes) when
/// dropped.
struct ClusterUp(std::process::Child);

impl Drop for ClusterUp {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cluster_up_https_prints_https_addresses_and_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ClusterUp(
        hypha_command(&[
            "cluster",
            "up",
            "--nodes",
            "1",
            "--https",
            "--base-port",
            "27700",
        ])
        .arg("--dir")
        .arg(dir.path())
        .env_remove("HYPHA_COOKIE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let done = line.contains("Ctrl-C stops");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains("node-0 admin API at https://127.0.0.1:27700"),
        "{text}"
    );
    let ca = dir.path().join("tls-ca").join("ca.pem");
    assert!(text.contains(&format!("--ca {}", ca.display())), "{text}");
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let out = hypha(&[
        "members",
        "--url",
        "https://127.0.0.1:27700",
        "--ca",
        ca.to_str().unwrap(),
        "--token",
        token.trim(),
    ]);
    assert!(out.status.success(), "{out:?}");
    drop(child);
}
