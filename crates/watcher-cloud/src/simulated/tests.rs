//! The simulated cloud's rules: migrations, aborts, capacity, resizes, faults.

use super::*;
use std::time::Duration;

const VM: &str = "6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0001";

#[tokio::test(start_paused = true)]
async fn a_live_migration_moves_the_instance_when_it_completes() {
    let cloud = SimulatedCloud::new(&Scenario::demo());
    let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(matches!(
        cloud.operation(&op).await.unwrap(),
        OperationState::Running { .. }
    ));
    assert_eq!(cloud.instance(VM).await.unwrap().unwrap().host, "compute-1");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        cloud.operation(&op).await.unwrap(),
        OperationState::Completed
    );
    assert_eq!(cloud.instance(VM).await.unwrap().unwrap().host, "compute-2");
}

#[tokio::test(start_paused = true)]
async fn an_aborted_live_migration_leaves_the_instance_on_its_source() {
    let cloud = SimulatedCloud::new(&Scenario::demo());
    let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    cloud.abort(&op).await.unwrap();
    assert_eq!(
        cloud.operation(&op).await.unwrap(),
        OperationState::Aborting
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(cloud.operation(&op).await.unwrap(), OperationState::Aborted);
    let vm = cloud.instance(VM).await.unwrap().unwrap();
    assert_eq!(
        (vm.host.as_str(), vm.status.as_str()),
        ("compute-1", "ACTIVE")
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_past_the_point_of_no_return_is_refused_and_the_migration_completes() {
    let cloud = SimulatedCloud::new(&Scenario::demo());
    let op = cloud.live_migrate(VM, Some("compute-2")).await.unwrap();
    tokio::time::advance(Duration::from_millis(7_600)).await;
    let err = cloud.abort(&op).await.unwrap_err();
    assert!(matches!(err, CloudError::PastPointOfNoReturn(_)), "{err}");
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        cloud.operation(&op).await.unwrap(),
        OperationState::Completed
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_without_capacity_is_refused() {
    let mut s = Scenario::demo();
    s.hosts[2].vcpus = 4; // compute-3 already runs 2 vcpus
    let cloud = SimulatedCloud::new(&s);
    let err = cloud
        .live_migrate("6a1e2b6c-8d1f-4a52-9a51-2c4f7f0a0003", Some("compute-3"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("capacity"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_reverted_resize_restores_the_old_flavor() {
    let cloud = SimulatedCloud::new(&Scenario::demo());
    let op = cloud.resize(VM, "m1.medium").await.unwrap();
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        cloud.operation(&op).await.unwrap(),
        OperationState::AwaitingConfirmation
    );
    cloud.revert(&op).await.unwrap();
    assert_eq!(
        cloud.instance(VM).await.unwrap().unwrap().flavor,
        "m1.small"
    );
}

#[test]
fn the_same_seed_draws_the_same_faults() {
    let draws = |seed| {
        let mut r = SplitMix64::new(seed);
        (0..8).map(|_| r.chance(0.5)).collect::<Vec<_>>()
    };
    assert_eq!(draws(7), draws(7));
    assert_ne!(draws(7), draws(8));
}
