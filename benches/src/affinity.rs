//! CPU pinning, so the bench and the broker do not steal each other's core.
//!
//! Affinity is per thread and inherited by threads created afterwards, so the bench pins its
//! main thread before building its runtime, and the null broker pins its own thread.

use std::io;

/// The cores this process may run on.
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bitmask the call fills in; we pass its exact size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is below CPU_SETSIZE, the bitmask's size.
        .filter(|&core| unsafe { libc::CPU_ISSET(core, &set) })
        .collect())
}

/// Pins the calling thread (and threads it creates later) to `cores`.
pub fn pin_current_thread(cores: &[usize]) -> io::Result<()> {
    // SAFETY: as above; every index is checked against CPU_SETSIZE before it is set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::other(format!("core {core} is out of range")));
        }
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The bench's cores: the allowed ones minus the broker's, or all allowed ones when the
/// broker's cover them all (a one-core machine).
pub fn complement(broker_cores: &[usize]) -> io::Result<Vec<usize>> {
    let allowed = allowed_cores()?;
    let rest: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !broker_cores.contains(c))
        .collect();
    Ok(if rest.is_empty() { allowed } else { rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_a_thread_is_visible_to_it() {
        let first = allowed_cores().unwrap()[0];
        std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            assert_eq!(allowed_cores().unwrap(), vec![first]);
        })
        .join()
        .unwrap();
    }
}
