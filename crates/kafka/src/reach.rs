//! Whether the brokers answer, asked once before an operator command does
//! anything else: so that an unreachable broker is one line naming its
//! address and the reason, within a bound, instead of each operation's
//! own timeout and librdkafka's error lines.

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Waits up to `timeout` for the brokers of `client` to answer a metadata
/// request; `progress` is told every few seconds what is being waited for.
/// The error names the bootstrap servers and why they did not answer.
pub fn reach(
    client: &ClientConfig,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let brokers = client
        .get("bootstrap.servers")
        .unwrap_or("(none)")
        .to_owned();
    let producer: BaseProducer = crate::producer_side(client)
        .create()
        .map_err(|e| format!("Kafka client for {brokers}: {e}"))?;
    let started = Instant::now();
    let deadline = started + timeout;
    let mut said = started;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match producer
            .client()
            .fetch_metadata(None, left.min(Duration::from_secs(3)))
        {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                let reason = unreachable(&brokers).unwrap_or_else(|| e.to_string());
                return Err(format!(
                    "cannot reach the Kafka brokers {brokers} (kafka.brokers) within {}s: {reason}",
                    timeout.as_secs()
                ));
            }
            Err(_) => {
                if said.elapsed() >= Duration::from_secs(3) {
                    said = Instant::now();
                    progress(&format!(
                        "still trying the Kafka brokers {brokers} ({}s of {}s)",
                        started.elapsed().as_secs(),
                        timeout.as_secs()
                    ));
                }
                // librdkafka answers at once while every broker is down.
                std::thread::sleep(Duration::from_millis(200).min(left));
            }
        }
    }
}

/// Why no bootstrap server takes a TCP connection (the address that
/// failed and the system's error), or `None` if one does: then the
/// failure is above TCP (TLS, SASL, protocol) and librdkafka's error says
/// more.
fn unreachable(brokers: &str) -> Option<String> {
    let mut reasons = Vec::new();
    for server in brokers.split(',').map(str::trim) {
        // `PLAINTEXT://host:port` and `host:port` alike.
        let address = server.rsplit("//").next().unwrap_or(server);
        let addrs = match address.to_socket_addrs() {
            Ok(addrs) => addrs.collect::<Vec<_>>(),
            Err(e) => {
                reasons.push(format!("{address}: {e}"));
                continue;
            }
        };
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(_) => return None,
                Err(e) => reasons.push(format!("{addr}: {e}")),
            }
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}
