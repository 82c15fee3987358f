//! Runs blocking filesystem and mount calls off the async runtime, each with a deadline, so a dead
//! share turns into an error instead of a stuck RPC.

use crate::error::{Error, Result};
use std::time::Duration;

/// Runs `f` on the blocking pool and waits at most `deadline` for it. On timeout the call keeps
/// running in its thread (a hung NFS call cannot be cancelled) but the caller gets
/// [`Error::Timeout`] at once. Anything `f` owns (such as a volume lock) is released only when `f`
/// really finishes.
pub async fn run<T, F>(what: &str, deadline: Duration, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(Error::Io {
            context: format!("{what}: worker failed"),
            source: std::io::Error::other(join.to_string()),
        }),
        Err(_) => Err(Error::Timeout {
            what: what.to_owned(),
            millis: deadline.as_millis(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_result_or_times_out() {
        let ok = run("quick", Duration::from_secs(5), || Ok(7))
            .await
            .unwrap();
        assert_eq!(ok, 7);
        // The slow task blocks until released after the check, so it cannot finish first
        // however late the timer fires on a loaded machine.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let slow = run("slow", Duration::from_millis(20), move || {
            let _ = wait.recv();
            Ok(())
        })
        .await;
        assert!(
            matches!(slow, Err(Error::Timeout { millis: 20, .. })),
            "{slow:?}"
        );
        let _ = release.send(());
    }
}
