//! Whether a command may have reached a Cluster node, across the retries redis-rs's cluster
//! connection makes on its own (a reconnect after a lost reply, a MOVED, a failover's refresh):
//! only the last attempt's error comes back, and a refused last attempt says nothing of the
//! earlier ones. The caller watches an argument unique to its request (the append's group-token
//! key, or the proposed entry ID of a lone `XADD`); every node connection notes the watched
//! arguments of each attempt that ended without a reply after it may have reached the node
//! ([`reply_lost`]). A reply, even an error (MOVED, TRYAGAIN, READONLY), says that attempt did
//! not run or ran to the answer given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};

use redis::{Arg, Cmd, RedisError};

/// Arguments longer than this are never markers (event JSON): not looked up.
const MAX_MARKER_LEN: usize = 256;

#[derive(Default)]
struct Mark {
    watchers: usize,
    sent: bool,
}

static MARKS: LazyLock<Mutex<HashMap<Vec<u8>, Mark>>> = LazyLock::new(Default::default);
/// Watches alive: with none, nothing is looked up.
static WATCHING: AtomicUsize = AtomicUsize::new(0);

fn marks() -> MutexGuard<'static, HashMap<Vec<u8>, Mark>> {
    MARKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A watched marker, unwatched when dropped. Two requests watching the same marker share its
/// mark: either one sent makes both "may have been sent", the safe side.
pub struct Watch(Vec<u8>);

/// Starts watching `marker` (at most [`MAX_MARKER_LEN`] bytes).
pub fn watch(marker: &str) -> Watch {
    debug_assert!(marker.len() <= MAX_MARKER_LEN);
    let key = marker.as_bytes().to_vec();
    marks().entry(key.clone()).or_default().watchers += 1;
    WATCHING.fetch_add(1, Ordering::AcqRel);
    Watch(key)
}

impl Watch {
    /// A command carrying the marker may have run on a node, unanswered, since the watch began.
    pub fn maybe_sent(&self) -> bool {
        marks().get(&self.0).is_none_or(|m| m.sent)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut marks = marks();
        if let Some(m) = marks.get_mut(&self.0) {
            m.watchers -= 1;
            if m.watchers == 0 {
                marks.remove(&self.0);
            }
        }
        WATCHING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An attempt failed with `e` after it may have reached a node, with no reply: not a server
/// reply, not a refusal (never sent).
pub fn reply_lost(e: &RedisError) -> bool {
    !e.is_connection_refusal()
        && (crate::stream::link::probed_stream::connection_failed(e) || e.is_timeout())
}

/// `cmds` may have run on a node without a reply: their watched arguments are marked.
pub fn note<'a>(cmds: impl IntoIterator<Item = &'a Cmd>) {
    if WATCHING.load(Ordering::Acquire) == 0 {
        return;
    }
    let mut marks = marks();
    for cmd in cmds {
        for arg in cmd.args_iter() {
            if let Arg::Simple(a) = arg {
                if a.len() <= MAX_MARKER_LEN {
                    if let Some(m) = marks.get_mut(a) {
                        m.sent = true;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_argument_is_marked_only_by_a_command_carrying_it() {
        let w = watch("{s}:d:g:tok-a");
        let other = watch("{s}:d:g:tok-b");
        note([&*redis::cmd("EVALSHA")
            .arg("sha")
            .arg(2)
            .arg("{s}")
            .arg("{s}:d:g:tok-a")]);
        assert!(w.maybe_sent());
        assert!(!other.maybe_sent());
        drop(w);
        // A new watch of the same marker starts unsent.
        let again = watch("{s}:d:g:tok-a");
        assert!(!again.maybe_sent());
        // Shared: sent for one is sent for both.
        let twin = watch("{s}:d:g:tok-a");
        note([&*redis::cmd("XADD").arg("{s}:d:g:tok-a")]);
        assert!(again.maybe_sent() && twin.maybe_sent());
        drop((again, twin, other));
        assert!(marks().get(b"{s}:d:g:tok-a".as_slice()).is_none());
    }
}
