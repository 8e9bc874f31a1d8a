//! The heartbeat thread, started with pthread_create rather than std::thread: a std thread
//! spawned from a server thread registers a thread-local destructor there, and glibc then never
//! unmaps the library, so UNINSTALL PLUGIN would leave it (and its statics) behind.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

type Body = Box<dyn FnOnce() + Send>;

pub struct Thread(libc::pthread_t);

extern "C" fn entry(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the Box<Body> leaked by `spawn`, handed over exactly once.
    let body = unsafe { Box::from_raw(arg as *mut Body) };
    // A panic must not unwind into pthread's frames.
    let _ = catch_unwind(AssertUnwindSafe(body));
    std::ptr::null_mut()
}

pub fn spawn(body: Body) -> std::io::Result<Thread> {
    let arg = Box::into_raw(Box::new(body));
    let mut id: libc::pthread_t = 0;
    // SAFETY: `entry` takes ownership of `arg`; on failure the thread never runs and we take
    // it back.
    let rc = unsafe { libc::pthread_create(&mut id, std::ptr::null(), entry, arg as *mut c_void) };
    if rc != 0 {
        // SAFETY: not handed to any thread.
        drop(unsafe { Box::from_raw(arg) });
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(Thread(id))
}

impl Thread {
    /// Waits for the thread to end, at most `limit`; gives the handle back if it has not.
    pub fn join_within(self, limit: Duration) -> Result<(), Thread> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: plain out-parameter calls on a thread we created and have not joined.
        unsafe {
            libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
            let nanos = now.tv_nsec as u64 + limit.subsec_nanos() as u64;
            let deadline = libc::timespec {
                tv_sec: now.tv_sec
                    + limit.as_secs() as libc::time_t
                    + (nanos / 1_000_000_000) as libc::time_t,
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            };
            match libc::pthread_timedjoin_np(self.0, std::ptr::null_mut(), &deadline) {
                0 => Ok(()),
                _ => Err(self),
            }
        }
    }

    /// Lets the thread run on unjoined (only when it would not stop).
    pub fn detach(self) {
        // SAFETY: the thread was created joinable and is not joined.
        unsafe { libc::pthread_detach(self.0) };
    }
}
