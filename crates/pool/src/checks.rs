//! The invariant the `pool_apply` fuzz target (`fuzz/`) and its property test both check: pool
//! commands as they arrive in a log entry (JSON), applied in order, never panic, apply the same
//! way every time (every member must end in the same state), and leave a state whose snapshot
//! reads back as itself.

use crate::{PoolCommand, Pools};

pub fn check_pool_commands(data: &[u8]) {
    let Ok(commands) = serde_json::from_slice::<Vec<PoolCommand>>(data) else {
        return;
    };
    let mut one = Pools::default();
    let mut other = Pools::default();
    for cmd in &commands {
        let a = one.apply(cmd);
        let b = other.apply(cmd);
        assert_eq!(a, b, "{cmd:?}");
        assert_eq!(one, other, "{cmd:?}");
    }
    let snapshot = serde_json::to_vec(&one).expect("a state prints");
    let back: Pools = serde_json::from_slice(&snapshot).expect("a snapshot reads back");
    assert_eq!(back, one);
}
