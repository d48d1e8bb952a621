//! SIGSTOP of a partition's leader for longer than the broker session timeout, then SIGCONT:
//! the paused leader is fenced and replaced while its sockets stay open, and when it resumes
//! it must not acknowledge or serve anything that contradicts the new leader.

#[path = "nemesis_support/mod.rs"]
mod support;

use spate_tests::nemesis::Nemesis;

#[test]
fn paused_leader_loses_and_contradicts_nothing_when_it_resumes() {
    support::run_and_check(&[Nemesis::Pause], 21);
}
