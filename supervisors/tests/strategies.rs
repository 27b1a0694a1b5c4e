//! One test per supervision rule: strategies, restart types, intensity
//! edges, escalation, shutdown order, dynamic children, fault injection.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use hypha_supervisors::{
    Backoff, ChildSpec, ChildState, ChildTemplate, FaultMode, Restart, RootExit, Shutdown,
    SpecError, Strategy, Supervisor, SupervisorError, SupervisorFlags,
};

async fn root(
    flags: SupervisorFlags,
    children: Vec<ChildSpec>,
) -> (
    hypha_supervisors::RootHandle,
    hypha_supervisors::SupervisorRef,
) {
    let h = Supervisor::start_root(None, "root", flags, children)
        .await
        .expect("root starts");
    let s = sup(&h.supervisor);
    (h, s)
}

fn three(log: &Log) -> Vec<ChildSpec> {
    vec![worker("a", log), worker("b", log), worker("c", log)]
}

fn lenient(strategy: Strategy) -> SupervisorFlags {
    SupervisorFlags::new(strategy).intensity(10, 5_000)
}

#[tokio::test]
async fn starts_children_in_order() {
    let log = Log::default();
    let (_h, s) = root(lenient(Strategy::OneForOne), three(&log)).await;
    assert_eq!(log.take(), ["start a", "start b", "start c"]);
    let counts = s.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (3, 3, 3));
    let which = s.which_children().await.unwrap();
    assert!(which.iter().all(|c| c.state == ChildState::Running));
}

#[tokio::test]
async fn one_for_one_restarts_only_the_failed_child() {
    let log = Log::default();
    let (_h, s) = root(lenient(Strategy::OneForOne), three(&log)).await;
    let (a, b, c) = (
        id_of(&s, &["a"]).await,
        id_of(&s, &["b"]).await,
        id_of(&s, &["c"]).await,
    );
    log.take();
    send(&s, &["b"], WorkerMsg::Fail).await;
    eventually("b restarted", || async { restarts(&s, "b").await == 1 }).await;
    assert_eq!(id_of(&s, &["a"]).await, a);
    assert_ne!(id_of(&s, &["b"]).await, b);
    assert_eq!(id_of(&s, &["c"]).await, c);
    assert_eq!(log.take(), ["start b"]);
}

#[tokio::test]
async fn one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order() {
    let log = Log::default();
    let (_h, s) = root(lenient(Strategy::OneForAll), three(&log)).await;
    log.take();
    send(&s, &["b"], WorkerMsg::Fail).await;
    eventually("all restarted", || async { restarts(&s, "c").await == 1 }).await;
    assert_eq!(
        log.take(),
        ["stop c", "stop a", "start a", "start b", "start c"]
    );
    for id in ["a", "b", "c"] {
        assert_eq!(restarts(&s, id).await, 1, "{id}");
    }
}

#[tokio::test]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let log = Log::default();
    let (_h, s) = root(lenient(Strategy::RestForOne), three(&log)).await;
    let a = id_of(&s, &["a"]).await;
    log.take();
    send(&s, &["b"], WorkerMsg::Fail).await;
    eventually("b and c restarted", || async {
        restarts(&s, "c").await == 1
    })
    .await;
    assert_eq!(log.take(), ["stop c", "start b", "start c"]);
    assert_eq!(id_of(&s, &["a"]).await, a);
    assert_eq!(restarts(&s, "a").await, 0);
}

/// Restart type × exit kind, against OTP's table.
#[tokio::test]
async fn restart_types_against_normal_and_abnormal_exits() {
    let cases = [
        (
            Restart::Permanent,
            (|| WorkerMsg::ExitNormal) as fn() -> WorkerMsg,
            true,
            true,
        ),
        (
            Restart::Permanent,
            (|| WorkerMsg::Fail) as fn() -> WorkerMsg,
            true,
            true,
        ),
        (Restart::Transient, || WorkerMsg::ExitNormal, false, true),
        (
            Restart::Transient,
            || WorkerMsg::ExitWith("shutdown: done".into()),
            false,
            true,
        ),
        (Restart::Transient, || WorkerMsg::Fail, true, true),
        (
            Restart::Transient,
            || WorkerMsg::ExitWith("lost disk".into()),
            true,
            true,
        ),
        (Restart::Temporary, || WorkerMsg::ExitNormal, false, false),
        (Restart::Temporary, || WorkerMsg::Fail, false, false),
    ];
    for (i, (restart, exit, restarted, kept)) in cases.into_iter().enumerate() {
        let log = Log::default();
        let child = worker("w", &log).restart(restart);
        let (_h, s) = root(lenient(Strategy::OneForOne), vec![child]).await;
        send(&s, &["w"], exit()).await;
        let what = format!("case {i}: {restart:?}");
        eventually(&what, || async {
            let which = s.which_children().await.unwrap();
            match (restarted, kept) {
                (true, _) => restarts(&s, "w").await == 1,
                (false, true) => which
                    .first()
                    .is_some_and(|c| c.state == ChildState::Stopped),
                (false, false) => which.is_empty(),
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_killed_child_is_an_abnormal_exit() {
    let log = Log::default();
    let child = worker("w", &log).restart(Restart::Transient);
    let (_h, s) = root(lenient(Strategy::OneForOne), vec![child]).await;
    s.inject_fault(&["w"], FaultMode::Kill).await.unwrap();
    eventually("restarted after kill", || async {
        restarts(&s, "w").await == 1
    })
    .await;
    let snap = s.snapshot().await.unwrap();
    assert_eq!(
        snap.children[0].last_failure.as_deref(),
        Some("stopped: killed")
    );
}

/// OTP default 1 restart in 5 s: a second failure exactly 5 000 ms after the
/// first escalates (the first is still inside the window).
#[tokio::test(start_paused = true)]
async fn intensity_window_inclusive_edge_escalates() {
    let log = Log::default();
    let (mut h, s) = root(
        SupervisorFlags::new(Strategy::OneForOne),
        vec![worker("w", &log)],
    )
    .await;
    send(&s, &["w"], WorkerMsg::Fail).await;
    eventually_paused("first restart", || async { restarts(&s, "w").await == 1 }).await;
    tokio::time::advance(Duration::from_millis(5_000)).await;
    send(&s, &["w"], WorkerMsg::Fail).await;
    let exit = tokio::time::timeout(Duration::from_secs(30), &mut h.exit).await;
    assert!(
        matches!(
            exit,
            Ok(Ok(RootExit::Escalated(
                SupervisorError::MaxIntensity { .. }
            )))
        ),
        "{exit:?}"
    );
    // The failed child is not started again once the window is exceeded.
    assert_eq!(log.snapshot().last().map(String::as_str), Some("start w"));
    assert_eq!(log.snapshot().len(), 2);
}

/// ... and one 5 001 ms after it is allowed.
#[tokio::test(start_paused = true)]
async fn intensity_window_just_outside_is_allowed() {
    let log = Log::default();
    let (mut h, s) = root(
        SupervisorFlags::new(Strategy::OneForOne),
        vec![worker("w", &log)],
    )
    .await;
    send(&s, &["w"], WorkerMsg::Fail).await;
    eventually_paused("first restart", || async { restarts(&s, "w").await == 1 }).await;
    tokio::time::advance(Duration::from_millis(5_001)).await;
    send(&s, &["w"], WorkerMsg::Fail).await;
    eventually_paused("second restart", || async { restarts(&s, "w").await == 2 }).await;
    assert!(h.exit.try_recv().is_err(), "root must still be running");
}

#[tokio::test]
async fn zero_intensity_escalates_on_first_failure() {
    let log = Log::default();
    let flags = SupervisorFlags::new(Strategy::OneForOne).intensity(0, 5_000);
    let (mut h, s) = root(flags, vec![worker("a", &log), worker("b", &log)]).await;
    log.take();
    send(&s, &["a"], WorkerMsg::Fail).await;
    let exit = tokio::time::timeout(CALL_TIMEOUT, &mut h.exit).await;
    assert!(matches!(exit, Ok(Ok(RootExit::Escalated(_)))), "{exit:?}");
    // The surviving child was stopped (post_stop ran) before escalating.
    assert_eq!(log.take(), ["stop b"]);
}

/// leaf fails → mid (intensity 0) escalates → root restarts mid; a second
/// round inside root's window makes root escalate too.
#[tokio::test]
async fn escalation_two_levels_deep() {
    let log = Log::default();
    let mid = ChildSpec::supervisor(
        "mid",
        SupervisorFlags::new(Strategy::OneForOne).intensity(0, 5_000),
        vec![worker("leaf", &log)],
    );
    let root_flags = SupervisorFlags::new(Strategy::OneForOne).intensity(1, 60_000);
    let (mut h, s) = root(root_flags, vec![worker("side", &log), mid]).await;
    let side = id_of(&s, &["side"]).await;

    send(&s, &["mid", "leaf"], WorkerMsg::Fail).await;
    eventually("mid restarted by root", || async {
        restarts(&s, "mid").await == 1
    })
    .await;
    eventually("leaf running again", || async {
        id_of(&s, &["mid", "leaf"]).await.is_some()
    })
    .await;
    assert_eq!(
        id_of(&s, &["side"]).await,
        side,
        "one_for_one spares the sibling"
    );
    let snap = s.snapshot().await.unwrap();
    let mid_snap = snap.find("root/mid").unwrap();
    assert!(mid_snap
        .last_failure
        .as_deref()
        .unwrap()
        .contains("exceeded 0 restarts"));

    log.take();
    send(&s, &["mid", "leaf"], WorkerMsg::Fail).await;
    let exit = tokio::time::timeout(CALL_TIMEOUT, &mut h.exit).await;
    match exit {
        Ok(Ok(RootExit::Escalated(SupervisorError::MaxIntensity { supervisor, .. }))) => {
            assert_eq!(supervisor, "root")
        }
        other => panic!("expected root escalation, got {other:?}"),
    }
    // Root stopped its remaining children in reverse order before failing.
    assert_eq!(log.take(), ["stop side"]);
}

#[tokio::test]
async fn stop_runs_in_reverse_order_honouring_each_shutdown() {
    let log = Log::default();
    let mut slow = args("slow", &log);
    slow.stop_delay_ms = 60_000;
    let children = vec![
        worker("a", &log),
        worker("brutal", &log).shutdown(Shutdown::BrutalKill),
        worker_with("slow", slow).shutdown(Shutdown::Timeout { timeout_ms: 50 }),
        worker("c", &log).shutdown(Shutdown::Infinity),
    ];
    let (h, _s) = root(lenient(Strategy::OneForOne), children).await;
    log.take();
    let started = std::time::Instant::now();
    h.supervisor
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    // c stops gracefully; slow is killed after 50 ms (its post_stop never
    // logs); brutal is killed at once (no post_stop); a stops gracefully.
    assert_eq!(log.take(), ["stop c", "stop a"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(h.exit.await, Ok(RootExit::Stopped));
}

#[tokio::test]
async fn a_child_failing_to_start_fails_the_supervisor_after_stopping_the_others() {
    let log = Log::default();
    let mut bad = args("bad", &log);
    bad.fail_start = true;
    let children = vec![
        worker("a", &log),
        worker_with("bad", bad),
        worker("c", &log),
    ];
    let result = Supervisor::start_root(None, "root", lenient(Strategy::OneForOne), children).await;
    assert!(result.is_err());
    assert_eq!(log.take(), ["start a", "start bad", "stop a"]);
}

#[tokio::test]
async fn specs_are_validated_up_front() {
    let log = Log::default();
    let dup = vec![worker("a", &log), worker("a", &log)];
    assert!(
        Supervisor::start_root(None, "root", lenient(Strategy::OneForOne), dup)
            .await
            .is_err()
    );
    assert!(
        log.take().is_empty(),
        "nothing may start when a spec is invalid"
    );
    let (_h, s) = root(lenient(Strategy::OneForOne), vec![worker("a", &log)]).await;
    assert_eq!(
        s.start_child(worker("a", &log)).await,
        Err(SupervisorError::Spec(SpecError::DuplicateId("a".into())))
    );
    assert_eq!(
        s.start_child(worker("x/y", &log)).await,
        Err(SupervisorError::Spec(SpecError::InvalidId("x/y".into())))
    );
}

#[tokio::test]
async fn dynamic_supervisor_starts_and_terminates_children_at_run_time() {
    let log = Log::default();
    let (_h, s) = root(SupervisorFlags::dynamic(2), vec![]).await;
    let l2 = log.clone();
    let template = ChildTemplate::new("job", move |id, n: u32| {
        worker_with(&id, args(&format!("job{n}"), &l2)).restart(Restart::Transient)
    });
    s.start_child(template.instantiate(1)).await.unwrap();
    s.start_child(template.instantiate(2)).await.unwrap();
    assert_eq!(
        s.start_child(template.instantiate(3)).await,
        Err(SupervisorError::Spec(SpecError::TooManyChildren { max: 2 }))
    );
    let ids: Vec<String> = s
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["job-1", "job-2"]);
    // A failure restarts just that child; a terminate drops its spec.
    send(&s, &["job-1"], WorkerMsg::Fail).await;
    eventually("job-1 restarted", || async {
        restarts(&s, "job-1").await == 1
    })
    .await;
    s.terminate_child("job-2").await.unwrap();
    assert_eq!(s.count_children().await.unwrap().specs, 1);
    // A transient dynamic child that finishes normally is dropped.
    send(&s, &["job-1"], WorkerMsg::ExitNormal).await;
    eventually("job-1 gone", || async {
        s.count_children().await.unwrap().specs == 0
    })
    .await;
}

#[tokio::test]
async fn static_terminate_keeps_the_spec_for_restart_child() {
    let log = Log::default();
    let (_h, s) = root(lenient(Strategy::OneForOne), vec![worker("a", &log)]).await;
    s.terminate_child("a").await.unwrap();
    assert_eq!(
        s.which_children().await.unwrap()[0].state,
        ChildState::Stopped
    );
    assert_eq!(
        s.delete_child("zz").await,
        Err(SupervisorError::NoSuchChild("zz".into()))
    );
    s.restart_child("a").await.unwrap();
    assert_eq!(
        s.restart_child("a").await,
        Err(SupervisorError::ChildRunning("a".into()))
    );
    s.terminate_child("a").await.unwrap();
    s.delete_child("a").await.unwrap();
    assert_eq!(s.count_children().await.unwrap().specs, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_the_restart() {
    let log = Log::default();
    let flags = lenient(Strategy::OneForOne).backoff(Backoff {
        initial_ms: 200,
        max_ms: 1_000,
    });
    let (_h, s) = root(flags, vec![worker("w", &log)]).await;
    send(&s, &["w"], WorkerMsg::Fail).await;
    eventually_paused("waiting out backoff", || async {
        states(&s).await == [ChildState::Restarting]
    })
    .await;
    advance_and_settle(199).await;
    assert_eq!(states(&s).await, [ChildState::Restarting]);
    tokio::time::advance(Duration::from_millis(1)).await;
    eventually_paused("restarted after backoff", || async {
        restarts(&s, "w").await == 1
    })
    .await;
}

#[tokio::test]
async fn faults_are_injected_by_path() {
    let log = Log::default();
    let plain = ChildSpec::actor("plain", {
        let log = log.clone();
        move |_| (None, Worker, args("plain", &log))
    });
    let inner = ChildSpec::supervisor(
        "inner",
        lenient(Strategy::OneForOne),
        vec![worker("w", &log), plain],
    );
    let (_h, s) = root(lenient(Strategy::OneForOne), vec![inner]).await;

    s.inject_fault(&["inner", "w"], FaultMode::Panic)
        .await
        .unwrap();
    eventually("w restarted after panic", || async {
        let snap = s.snapshot().await.unwrap();
        snap.find("root/inner/w")
            .is_some_and(|c| c.restarts == 1 && c.state == ChildState::Running)
    })
    .await;
    let snap = s.snapshot().await.unwrap();
    let w = snap.find("root/inner/w").unwrap();
    assert!(
        w.last_failure.as_deref().unwrap().contains("injected"),
        "{w:?}"
    );

    assert_eq!(
        s.inject_fault(&["inner", "plain"], FaultMode::Panic).await,
        Err(SupervisorError::CrashUnsupported("root/inner/plain".into()))
    );
    assert_eq!(
        s.inject_fault(&["inner", "nope"], FaultMode::Kill).await,
        Err(SupervisorError::NoSuchChild("root/inner/nope".into()))
    );
    // Panicking a supervisor restarts it, and with it its subtree.
    s.inject_fault(&["inner"], FaultMode::Panic).await.unwrap();
    eventually("inner restarted", || async {
        restarts(&s, "inner").await == 1
    })
    .await;
    assert!(
        s.snapshot().await.unwrap().all_running() || {
            eventually("subtree running", || async {
                s.snapshot().await.unwrap().all_running()
            })
            .await;
            true
        }
    );
}

/// rest_for_one with backoff: b fails, then a fails before b's delayed start
/// fires. b's earlier timer is stale and must not start b and c ahead of a;
/// all three start, in order, when a's timer fires.
#[tokio::test(start_paused = true)]
async fn a_stale_delayed_start_does_not_start_children_out_of_order() {
    let log = Log::default();
    let flags = lenient(Strategy::RestForOne).backoff(Backoff {
        initial_ms: 100,
        max_ms: 10_000,
    });
    let (_h, s) = root(flags, three(&log)).await;
    log.take();
    send(&s, &["b"], WorkerMsg::Fail).await;
    eventually_paused("b and c restarting", || async {
        states(&s).await[1..] == [ChildState::Restarting; 2]
    })
    .await;
    send(&s, &["a"], WorkerMsg::Fail).await;
    eventually_paused("a restarting", || async {
        states(&s).await == [ChildState::Restarting; 3]
    })
    .await;
    // b's timer (100 ms) fires now; a's (200 ms: second restart in window) not yet.
    advance_and_settle(150).await;
    assert_eq!(states(&s).await, [ChildState::Restarting; 3]);
    assert_eq!(
        s.restart_child("b").await,
        Err(SupervisorError::ChildRestarting("b".into()))
    );
    advance_and_settle(60).await;
    eventually_paused("all restarted", || async { restarts(&s, "c").await == 1 }).await;
    assert_eq!(log.take(), ["stop c", "start a", "start b", "start c"]);
}

/// A restart whose start fails is retried, and the retry counts against
/// the intensity (OTP's try_again_restart).
#[tokio::test]
async fn a_failed_restart_is_retried_and_counted() {
    let log = Log::default();
    let a = args("w", &log);
    let fail_next = a.fail_next_starts.clone();
    let (_h, s) = root(lenient(Strategy::OneForOne), vec![worker_with("w", a)]).await;
    fail_next.store(2, std::sync::atomic::Ordering::SeqCst);
    send(&s, &["w"], WorkerMsg::Fail).await;
    eventually("running after two failed starts", || async {
        restarts(&s, "w").await == 1
    })
    .await;
    let snap = s.snapshot().await.unwrap();
    assert_eq!(snap.restarts_in_window, 3, "one failure + two retries");
    assert_eq!(snap.children[0].state, ChildState::Running);

    let log = Log::default();
    let a = args("w", &log);
    let fail_next = a.fail_next_starts.clone();
    let flags = SupervisorFlags::new(Strategy::OneForOne).intensity(1, 60_000);
    let (mut h, s) = root(flags, vec![worker_with("w", a)]).await;
    fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    send(&s, &["w"], WorkerMsg::Fail).await;
    let exit = tokio::time::timeout(CALL_TIMEOUT, &mut h.exit).await;
    assert!(matches!(exit, Ok(Ok(RootExit::Escalated(_)))), "{exit:?}");
}

/// OTP deletes temporary siblings that a one_for_all restart stopped.
#[tokio::test]
async fn one_for_all_drops_temporary_siblings() {
    let log = Log::default();
    let children = vec![
        worker("a", &log),
        worker("tmp", &log).restart(Restart::Temporary),
        worker("c", &log),
    ];
    let (_h, s) = root(lenient(Strategy::OneForAll), children).await;
    send(&s, &["c"], WorkerMsg::Fail).await;
    eventually("a and c restarted", || async {
        restarts(&s, "a").await == 1
    })
    .await;
    let ids: Vec<String> = s
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["a", "c"]);
}
