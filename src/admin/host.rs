//! The Host allow-list: which names a request may address the node by.
//!
//! DNS rebinding points a name the attacker controls at the node's
//! address: a page from that name is then same-origin with the node and
//! can read the console and any open route. Such a request still names
//! the attacker's host in `Host`, so the node answers only requests that
//! address it by an IP literal (which no DNS answer can rebind),
//! `localhost`, or a name the operator listed (`http.allowed_hosts`).
//! Pure: the middleware in `super::middleware` is the shell.

/// The names a node answers to, besides IP literals and `localhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

/// The entry of `http.allowed_hosts` that turns the check off.
pub const ANY_HOST: &str = "*";

impl AllowedHosts {
    /// Allow these names (case-insensitive, without port); `*` allows any.
    pub fn new(names: &[String]) -> Self {
        Self {
            names: names.iter().map(|n| normalise(n)).collect(),
            any: names.iter().any(|n| n == ANY_HOST),
        }
    }

    /// Whether a request whose `Host` (or absolute-form authority) is
    /// `host` may be served. A request without one (HTTP/1.0 tools) is not
    /// a browser's and is served.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        if self.any {
            return true;
        }
        let Some(name) = host_name(host) else {
            return false;
        };
        is_ip_literal(&name) || name == "localhost" || self.names.contains(&name)
    }
}

/// Lower case, without a trailing dot (`localhost.` is `localhost`).
fn normalise(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then(|| format!("[{}]", inside.to_ascii_lowercase()));
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return None,
        None => host,
    };
    (!name.is_empty()).then(|| normalise(name))
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// `1.2.3.4` or `[v6]`: an address, not a name DNS could rebind.
fn is_ip_literal(name: &str) -> bool {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => name.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_listed_names_pass_other_names_do_not() {
        let hosts = AllowedHosts::new(&["Hypha.Example.com".to_owned()]);
        for ok in [
            "127.0.0.1:7070",
            "10.1.2.3",
            "[::1]:7070",
            "[2001:DB8::1]",
            "localhost:7070",
            "LOCALHOST.",
            "hypha.example.com",
            "hypha.example.com.:443",
        ] {
            assert!(hosts.allows(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:7070",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1",
            "[::1]x",
            "[evil]",
            "127.0.0.1:port",
            ":7070",
            "",
            "1.2.3.4:99999999",
        ] {
            assert!(!hosts.allows(Some(bad)), "{bad}");
        }
        assert!(hosts.allows(None), "no Host: not a browser");
        assert!(AllowedHosts::new(&[ANY_HOST.to_owned()]).allows(Some("evil.example")));
    }
}
