//! Graceful shutdown as both services' suites watch it on a child process: an idle keep-alive
//! connection, SIGTERM, new connections refused, the idle one closed, an in-flight request
//! answered, the exit with status 0 within the grace.

use std::time::{Duration, Instant};

use crate::checks::loud;
use crate::child::Proc;
use crate::raw::{Raw, RawResponse, refused_within};

/// A keep-alive connection to `addr` that has had one request (`GET /health/live`, 200) and
/// is now idle.
pub async fn idle_connection(addr: &str) -> Raw {
    let mut idle = Raw::connect(addr).await.expect("connect");
    idle.send(format!("GET /health/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    assert_eq!(
        idle.read_response(Duration::from_secs(5))
            .await
            .expect("live")
            .status,
        200
    );
    idle
}

/// What followed a SIGTERM.
pub struct Sigterm {
    /// When the signal was sent.
    pub signalled: Instant,
    /// How long until new connections were refused.
    pub refused_after: Duration,
    /// How long until the idle connection was closed.
    pub idle_closed_after: Duration,
}

/// Sends SIGTERM to `service`; expects new connections refused and `idle` closed, each within
/// two seconds.
pub async fn sigterm(service: &Proc, mut idle: Raw) -> Sigterm {
    service.sigterm().await;
    let signalled = Instant::now();
    let refused_after = refused_within(&service.addr, Duration::from_secs(2)).await;
    let (idle_closed_after, _) = idle
        .closed_within(Duration::from_secs(2))
        .await
        .expect("the idle connection is closed at once");
    Sigterm {
        signalled,
        refused_after,
        idle_closed_after,
    }
}

/// Sends `rest` of the in-flight request `slow` and expects its 201 within `limit`.
pub async fn finish_created(slow: &mut Raw, rest: &[u8], limit: Duration) -> RawResponse {
    slow.send(rest).await.expect("second half");
    let res = slow
        .read_response(limit)
        .await
        .expect("the in-flight request is answered");
    assert_eq!(res.status, 201, "{}", String::from_utf8_lossy(&res.body));
    res
}

impl Sigterm {
    /// Expects `service` to exit 0 within `grace` of the signal; how long it took.
    pub async fn exits_zero_within(&self, service: &mut Proc, grace: Duration) -> Duration {
        let (exit, _) = service.wait_exit(grace + Duration::from_secs(2)).await;
        let exited_after = self.signalled.elapsed();
        assert_eq!(exit.code(), Some(0), "exit status after SIGTERM");
        assert!(
            exited_after < grace,
            "drained and exited in {exited_after:?}, within SHUTDOWN_GRACE_MS"
        );
        exited_after
    }

    /// Writes the timings to the real stderr ([`loud`]).
    pub fn report(&self, service: &str, exited_after: Duration) {
        loud(&format!(
            "{service} SIGTERM: refused new connections after {:?}, closed the idle one \
             after {:?}, exited 0 after {exited_after:?}",
            self.refused_after, self.idle_closed_after
        ));
    }
}
